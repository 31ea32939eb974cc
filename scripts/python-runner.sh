#!/usr/bin/env bash
# Installs gitlab-python-runner (pinned, tests/python-runner/requirements.txt) into a venv at
# target/python-runner, where the e2e tests look for it (or set CHATOPS_PYTHON_RUNNER to its
# gitlab-runner.py). Without it those tests skip, saying so. Needs python3 with venv and pip.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/python-runner
if [ ! -x "$venv/bin/gitlab-runner.py" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        -r tests/python-runner/requirements.txt
fi
echo "gitlab-python-runner: $venv/bin/gitlab-runner.py"
