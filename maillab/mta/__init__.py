"""The MTA: a host's mail transfer agent (`agent.Mta`: its SMTP servers, queue and checkpoints),
routing by MX, the MDA that stores local copies, and delivery status notifications."""
