import os
import sys

from .cli import main

code = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # one process of a torchrun launch: its process group is not destroyed (training/distributed.py),
    # so it ends without running destructors, after its output is out
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
