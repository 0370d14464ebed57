"""Layer 3: the model. The character LSTM's configuration, presets and Keras 3 network (lstm),
checkpoints on disk (checkpoint), training (train) and what to train on (recipes).

It may import abcweb.music and abcweb.sound (training checks and transposes its tunes), and
nothing above. TensorFlow is imported only where a Keras model is built or trained, so that
reading a checkpoint needs NumPy alone.
"""
