-- The part of Odoo's standard schema that the stand-in keeps (base module).
-- Column names and types follow Odoo 16-19 where the product may touch them.

CREATE TABLE res_lang (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    code varchar NOT NULL UNIQUE,
    iso_code varchar,
    url_code varchar,
    active boolean DEFAULT false,
    direction varchar DEFAULT 'ltr',
    date_format varchar DEFAULT '%m/%d/%Y',
    time_format varchar DEFAULT '%H:%M:%S',
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp
);

CREATE TABLE res_partner (
    id serial PRIMARY KEY,
    name varchar,
    complete_name varchar,
    company_id integer,
    parent_id integer REFERENCES res_partner(id) ON DELETE SET NULL,
    type varchar DEFAULT 'contact',
    ref varchar,
    lang varchar,
    tz varchar,
    vat varchar,
    website varchar,
    email varchar,
    phone varchar,
    mobile varchar,
    street varchar,
    zip varchar,
    city varchar,
    function varchar,
    is_company boolean DEFAULT false,
    active boolean DEFAULT true,
    partner_share boolean DEFAULT true,
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp
);

CREATE TABLE res_company (
    id serial PRIMARY KEY,
    name varchar NOT NULL UNIQUE,
    partner_id integer NOT NULL REFERENCES res_partner(id),
    email varchar,
    phone varchar,
    sequence integer DEFAULT 10,
    active boolean DEFAULT true,
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp
);

CREATE TABLE res_users (
    id serial PRIMARY KEY,
    login varchar NOT NULL,
    password varchar,
    partner_id integer NOT NULL REFERENCES res_partner(id),
    company_id integer NOT NULL REFERENCES res_company(id),
    active boolean DEFAULT true,
    share boolean DEFAULT false,
    signature text,
    action_id integer,
    notification_type varchar DEFAULT 'email',
    totp_secret varchar,
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp,
    CONSTRAINT res_users_login_key UNIQUE (login)
);

CREATE TABLE res_users_log (
    id serial PRIMARY KEY,
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp
);

CREATE TABLE ir_config_parameter (
    id serial PRIMARY KEY,
    key varchar NOT NULL,
    value text NOT NULL,
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp,
    CONSTRAINT ir_config_parameter_key_uniq UNIQUE (key)
);

CREATE TABLE ir_module_category (
    id serial PRIMARY KEY,
    name jsonb NOT NULL,
    sequence integer,
    visible boolean DEFAULT true,
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp
);

CREATE TABLE ir_module_module (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    category_id integer REFERENCES ir_module_category(id) ON DELETE SET NULL,
    shortdesc jsonb,
    summary jsonb,
    description jsonb,
    author varchar,
    maintainer varchar,
    contributors text,
    website varchar,
    latest_version varchar,
    published_version varchar,
    url varchar,
    sequence integer DEFAULT 100,
    auto_install boolean DEFAULT false,
    state varchar(16),
    demo boolean DEFAULT false,
    license varchar(32),
    application boolean DEFAULT false,
    icon varchar,
    to_buy boolean DEFAULT false,
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp,
    CONSTRAINT ir_module_module_name_uniq UNIQUE (name)
);

CREATE TABLE ir_module_module_dependency (
    id serial PRIMARY KEY,
    name varchar,
    module_id integer REFERENCES ir_module_module(id) ON DELETE CASCADE,
    auto_install_required boolean DEFAULT true,
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp
);

CREATE TABLE ir_model_data (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    module varchar NOT NULL,
    model varchar NOT NULL,
    res_id integer,
    noupdate boolean DEFAULT false,
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp,
    CONSTRAINT ir_model_data_name_nospaces CHECK (name NOT LIKE '% %')
);
CREATE UNIQUE INDEX ir_model_data_module_name_uniq_index ON ir_model_data (module, name);
CREATE INDEX ir_model_data_model_res_id_index ON ir_model_data (model, res_id);

CREATE TABLE ir_act_server (
    id serial PRIMARY KEY,
    name jsonb NOT NULL,
    type varchar NOT NULL DEFAULT 'ir.actions.server',
    usage varchar NOT NULL DEFAULT 'ir_actions_server',
    state varchar NOT NULL DEFAULT 'code',
    model_name varchar,
    code text,
    binding_type varchar NOT NULL DEFAULT 'action',
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp
);

CREATE TABLE ir_cron (
    id serial PRIMARY KEY,
    ir_actions_server_id integer NOT NULL REFERENCES ir_act_server(id) ON DELETE RESTRICT,
    cron_name varchar,
    user_id integer NOT NULL REFERENCES res_users(id),
    active boolean DEFAULT true,
    interval_number integer DEFAULT 1,
    interval_type varchar DEFAULT 'months',
    nextcall timestamp NOT NULL,
    lastcall timestamp,
    priority integer DEFAULT 5,
    failure_count integer DEFAULT 0,
    first_failure_date timestamp,
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp
);

CREATE TABLE ir_mail_server (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    from_filter varchar,
    smtp_host varchar,
    smtp_port integer NOT NULL DEFAULT 25,
    smtp_authentication varchar NOT NULL DEFAULT 'login',
    smtp_user varchar,
    smtp_pass varchar,
    smtp_encryption varchar NOT NULL DEFAULT 'none',
    smtp_ssl_certificate bytea,
    smtp_ssl_private_key bytea,
    smtp_debug boolean DEFAULT false,
    sequence integer DEFAULT 10,
    active boolean DEFAULT true,
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp
);

CREATE TABLE ir_attachment (
    id serial PRIMARY KEY,
    name varchar NOT NULL,
    description text,
    res_model varchar,
    res_field varchar,
    res_id integer,
    company_id integer,
    type varchar NOT NULL DEFAULT 'binary',
    url varchar(1024),
    public boolean DEFAULT false,
    access_token varchar,
    db_datas bytea,
    store_fname varchar,
    file_size integer,
    checksum varchar(40),
    mimetype varchar,
    index_content text,
    original_id integer,
    create_uid integer, create_date timestamp, write_uid integer, write_date timestamp
);
CREATE INDEX ir_attachment_res_idx ON ir_attachment (res_model, res_id);
CREATE INDEX ir_attachment_checksum_index ON ir_attachment (checksum);
CREATE INDEX ir_attachment_store_fname_index ON ir_attachment (store_fname);
