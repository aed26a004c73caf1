import sys

from vlm_reward_wrappers.cli import main

sys.exit(main())
