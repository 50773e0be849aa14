-- deactivate fetchmail server
UPDATE fetchmail_server
   SET active = false;
