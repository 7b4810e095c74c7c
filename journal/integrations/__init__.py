"""The journal under agent frameworks: each submodule imports its framework,
an optional extra (``pip install "agcx[langgraph]"``); this package imports none."""
