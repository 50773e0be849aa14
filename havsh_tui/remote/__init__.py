"""SSH to the hosts and the docker SDK over it. No Textual here."""
