"""Vigil's Faust agents: thin glue (decode, look up state, call the detector, emit).

Discovered by the worker (`app.runtime.faust_app.DISCOVER`); `app/` never imports this package.
"""
