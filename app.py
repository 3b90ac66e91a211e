"""OSDFace demo (Gradio): ``python app.py [--port N] [--model FOLDER_OR_HUB_ID]``; also the Hugging Face Space's entry.

The logic lives in ``osdface/app/`` (shared by the tests and the Space); ``python app.py --help`` lists the options.
"""

import sys

from osdface.app import main

if __name__ == "__main__":
    sys.exit(main())
