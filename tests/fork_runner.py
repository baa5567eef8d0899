"""Run many short script invocations quickly: import torch and the project once, then fork one child per command.

test_errors.py runs each bad-input case as a user would: the script in its own process, as `__main__`, with its
own exit status and output streams. Starting Python and importing torch for each of some 30 cases would cost
about a second of CPU each, most of the test's time; a child forked from this process has those imports already
and then does what `python SCRIPT ARGS...` does, including the interpreter's handling of an uncaught exception
(print the traceback, exit 1) and of sys.exit("message") (print the message, exit 1).

    python tests/fork_runner.py < jobs.json    # [[argv, stdout_file, stderr_file], ...] -> [exit status, ...]

The caller sets the environment (e.g. CUDA_VISIBLE_DEVICES): it is in place before torch is imported here.
"""

import json
import os
import runpy
import signal
import sys
import traceback

TIMEOUT_S = 60  # a case that hangs (say, a download that never fails) is killed, and fails its test


def run_script(argv) -> int:
    """What `python argv[0] argv[1:]...` does, in this process; returns the exit status."""
    try:
        runpy.run_path(argv[0], run_name="__main__")
        return 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1


def main():
    jobs = json.load(sys.stdin)
    base_path = sys.path[1:]  # sys.path[0] is this file's folder; a script gets its own, as `python SCRIPT` does
    sys.path.insert(0, os.getcwd())
    try:  # the slow imports, once; if one fails, each child fails the same way, visibly
        import torch  # noqa: F401
        import sample  # noqa: F401
        import train  # noqa: F401
    except Exception:
        pass
    statuses = []
    for argv, out, err in jobs:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: its streams go to the job's files, then it runs the script
            for fd, path in ((1, out), (2, err)):
                f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(f, fd)
                os.close(f)
            sys.path[:] = [os.path.dirname(os.path.abspath(argv[0]))] + base_path
            sys.argv = list(argv)
            signal.alarm(TIMEOUT_S)
            code = run_script(argv)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        statuses.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    json.dump(statuses, sys.stdout)


if __name__ == "__main__":
    main()
