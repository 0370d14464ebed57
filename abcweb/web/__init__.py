"""Layer 6: what the page needs beyond Streamlit's widgets. Share-link settings (params), the
visitor's tunebook (tunebook), the Altair charts of what the model thought (charts), training
runs in a process of their own (training_job, train_worker), and the public server's guards:
messages fit to show a stranger (messages), security headers (security), releasing departed
sessions (sessions) and spacing one address's requests (fairness).

It may import every layer below it. Only the page (streamlit_app.py and views/) and the
command line sit above it.
"""
