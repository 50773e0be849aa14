-- deactivate all crons but the autovacuum one
UPDATE ir_cron
   SET active = 'f'
 WHERE id NOT IN (
       SELECT res_id
         FROM ir_model_data
        WHERE model = 'ir.cron'
          AND module = 'base'
          AND name = 'autovacuum_job'
);

-- activate neutralization watermarks banner
INSERT INTO ir_config_parameter (key, value)
VALUES ('database.is_neutralized', true)
    ON CONFLICT (key) DO
       UPDATE SET value = true;

-- deactivate mail servers but activate default dummy mail server
UPDATE ir_mail_server
   SET active = 'f';
INSERT INTO ir_mail_server (name, smtp_port, smtp_host, smtp_encryption, active, smtp_authentication)
VALUES ('neutralization - disable emails', 1025, 'invalid', 'none', true, 'login');
