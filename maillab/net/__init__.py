"""What every server of the lab shares: the session loop (`session_server`), ports, admission
and connection limits, failed-login penalties."""
