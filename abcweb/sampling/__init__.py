"""Layer 4: writing tunes. The sampling loop in NumPy and its TensorFlow twin (loop, tf_loop),
which depend on nothing above the model; on top of the loop, the best of several drafts
(drafts) with the model's melody prior as a tie-breaker (melody); sampling worker processes
(sample_worker), which run the loop and the drafts; and the public Sampler (sampler), which
puts them together.

Within the layer the order is loop < drafts < sample_worker < sampler. It may import
abcweb.music, abcweb.sound and abcweb.model. Fitting the melody prior draws tunes to measure
them, so it lives in abcweb.evaluation, above this layer.
"""
