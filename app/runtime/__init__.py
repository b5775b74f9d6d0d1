"""The running worker: the Faust app built from settings (`service`), topics, the commit protocol
(`transactions`) and the partitions it owns (`partitions`), the label follower and the store dir.

Importing `app.runtime.service` builds the app; nothing else here has import-time effects.
"""
