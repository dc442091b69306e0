"""The traffic dashboard: a Streamlit page (``app.py``) over the DuckDB serving database (``queries.py``)."""
