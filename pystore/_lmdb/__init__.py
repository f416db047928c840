"""The LMDB backend: the cffi glue over the C core (``csrc/``).

``_native`` is the cffi API-mode module (``ffi``, ``lib``); ``core`` is the
only code that calls its transaction functions; ``fast`` holds the one-call
reads and wire listings; ``group`` the group commit of durable writes;
``hygiene``/``wirestrip`` the tenancy-field strip plans; ``schema`` each
kind's recorded schema; ``wire`` the repeated-field wrappers for lists parsed
once; ``admin`` stats and backup.  Nothing here imports the public modules
above it except ``errors`` and ``resource``.
"""
