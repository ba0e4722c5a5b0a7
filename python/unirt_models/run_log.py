"""A log for the accuracy scripts: say() prints and logs a line; run() runs a command, logs its
command line and the tail of its output, raises on failure and returns (stdout, seconds)."""
import os
import subprocess
import time


class RunLog:
    def __init__(self, out_dir, name):
        os.makedirs(out_dir, exist_ok=True)
        self.file = open(os.path.join(out_dir, name), "w")

    def say(self, msg):
        print(msg, flush=True)
        self.file.write(msg + "\n")
        self.file.flush()

    @staticmethod
    def shown(cmd, limit=600):
        """The command line, its middle elided past `limit` characters (a detect over 200 images
        names every file)."""
        line = " ".join(map(str, cmd))
        return line if len(line) <= limit else f"{line[:limit // 2]} ... ({len(line) - limit} characters) ... {line[-limit // 2:]}"

    def run(self, cmd):
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True)
        self.file.write(self.shown(cmd) + "\n" + p.stdout[-3000:] + p.stderr[-3000:] + "\n")
        if p.returncode:
            raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{p.stderr[-2000:]}")
        return p.stdout, time.time() - t0
