"""The dashboard with its security headers (abcweb/web/security.py):

    streamlit run serve.py          # takes the same --server.* flags as streamlit_app.py

Streamlit has no setting for response headers; `st.App`, its documented ASGI entry point, takes
middleware, and `streamlit run` serves an st.App it finds in a script. `streamlit run
streamlit_app.py` still works, without the headers.
"""

import streamlit as st
from starlette.middleware import Middleware

from abcweb.web.security import SecurityHeaders

app = st.App("streamlit_app.py", middleware=[Middleware(SecurityHeaders)])
