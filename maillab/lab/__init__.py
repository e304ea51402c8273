"""The lab's supervisor (`supervisor.Lab`) and what it is built from: the world, the directory
of users, the state folder, the shared context; the maillog, the control socket and admin."""
