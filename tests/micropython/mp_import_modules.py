"""Import each module named in argv[1:] under MicroPython (run by tools/micropython/run.mjs).

Prints ``IMPORTED name`` or the traceback of a failed import, then one
``RESULT`` line; an assertion lists the failures, so the run exits non-zero.
"""

import sys

failed = []
for name in sys.argv[1:]:
    try:
        __import__(name)
    except Exception as e:  # every module is tried; all failures are reported
        sys.print_exception(e)
        failed.append(name)
    else:
        print("IMPORTED", name)
print("RESULT imported=%d failed=%d" % (len(sys.argv) - 1 - len(failed), len(failed)))
assert not failed, "modules that do not import under MicroPython: " + ", ".join(failed)
