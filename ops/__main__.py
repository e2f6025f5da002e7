"""`python -m ops` is the `helpdesk` command."""

from ops.cli import main

main()
