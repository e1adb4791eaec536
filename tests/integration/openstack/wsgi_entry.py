"""The WSGI entry gunicorn loads for each OpenStack API of the test cloud.

oslo.config parses `sys.argv` inside the OpenStack WSGI apps, so under gunicorn every worker
would die on gunicorn's own arguments: empty them, then import the service's own entry module
(named by MICADO_OS_WSGI_MODULE, e.g. `keystone.wsgi.api`), which reads its configuration from
its OS_<SERVICE>_CONFIG_DIR environment variable.
"""

import importlib
import os
import sys

sys.argv = sys.argv[:1]
application = importlib.import_module(os.environ["MICADO_OS_WSGI_MODULE"]).application
