"""`python -m quantbot_assets.cli ...`"""

import sys

from quantbot_assets.cli.main import main

sys.exit(main())
