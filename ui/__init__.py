"""Streamlit-side helpers shared by the pages (cached model loading, charts). `core` never imports this."""
