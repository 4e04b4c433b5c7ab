"""File transfers the central system asks for: uploads of log files (GetLog) to a
location it names (``upload.py``) and the service that answers log requests
(``logs.py``). Protocol-neutral: the OCPP adapters translate their messages to it.
"""
