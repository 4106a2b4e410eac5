"""What a call gives, for the test scripts (testlib.bash puts tests/ on
PYTHONPATH): "OK", or the name of the errno it failed with."""
import errno


def outcome(f, *a):
    try:
        f(*a)
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
