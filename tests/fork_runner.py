"""Run many short script invocations quickly: import torch and the project once, then fork one child per command.

test_errors.py runs each bad-input case as a user would: the script in its own process, as `__main__`, with its
own exit status and output streams. Starting Python and importing torch for each of some 30 cases would cost
about a second of CPU each, most of the test's time; a child forked from this process has those imports already,
runs the script as `python SCRIPT ARGS...` would, and ends as the interpreter ends a script (end_as_python_does):
an uncaught exception prints its traceback, sys.exit("message") prints the message, and exit handlers (e.g. the
shutdown of a process pool) run, all as in a real run.

    python tests/fork_runner.py < jobs.json    # [[argv, stdout_file, stderr_file], ...] -> [exit status, ...]

The caller sets the environment (e.g. CUDA_VISIBLE_DEVICES): it is in place before torch is imported here.
"""

import atexit
import gc
import json
import os
import runpy
import signal
import sys
import threading

TIMEOUT_S = 60  # a case that hangs (say, a download that never fails) is killed, and fails its test
PARALLEL = 2  # children at once: much of a child's time is the interpreter's exit (tearing down torch), on one core


def end_as_python_does(run):
    """Call run() (the script) and end this process as the interpreter ends a script: an uncaught exception prints
    its traceback, status 1; sys.exit(n) gives status n, sys.exit("message") prints the message, status 1; then
    the interpreter's exit steps: other threads joined (and what waits for them, e.g. a concurrent.futures pool),
    the atexit handlers (e.g. a multiprocessing pool's shutdown), the streams flushed. Only the teardown of every
    module is left out (os._exit): in a child forked from a process with torch loaded it costs 0.2-0.9 s of CPU,
    copying the pages it touches, and nothing a user sees or finds on disk comes of it."""
    try:
        run()
        status = 0
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        status = 1
    threading._shutdown()  # what the interpreter's exit calls first (Py_FinalizeEx), then the atexit handlers
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


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
    # Every object made so far out of the garbage collector's reach: a collection in a child would touch (and so
    # copy, page by page) the whole heap it shares with this process.
    gc.freeze()
    statuses, running = [None] * len(jobs), {}  # running: pid -> job index
    for i, (argv, out, err) in enumerate(jobs):
        if len(running) == PARALLEL:
            pid, status = os.wait()
            statuses[running.pop(pid)] = os.waitstatus_to_exitcode(status)
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
            end_as_python_does(lambda: runpy.run_path(argv[0], run_name="__main__"))
        running[pid] = i
    while running:
        pid, status = os.wait()
        statuses[running.pop(pid)] = os.waitstatus_to_exitcode(status)
    json.dump(statuses, sys.stdout)


if __name__ == "__main__":
    main()
