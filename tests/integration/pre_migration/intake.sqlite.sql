-- intake's schema as made by reroute before migrations (commit b61df52, create_all), sqlite

CREATE TABLE referral (
	referral_id VARCHAR(40) NOT NULL, 
	agency_id VARCHAR(64) NOT NULL, 
	agency_referral_id VARCHAR(100) NOT NULL, 
	received_at DATETIME NOT NULL, 
	body VARCHAR NOT NULL, 
	person_id VARCHAR(40) NOT NULL, 
	updated_at DATETIME NOT NULL, 
	revision INTEGER NOT NULL, 
	cloudevent VARCHAR, 
	submissions INTEGER NOT NULL, 
	PRIMARY KEY (referral_id), 
	CONSTRAINT uq_referral_agency_ref UNIQUE (agency_id, agency_referral_id)
);

CREATE INDEX ix_referral_agency_id ON referral (agency_id);

CREATE INDEX ix_referral_person_id ON referral (person_id);

CREATE TABLE rejection (
	event_id VARCHAR(400) NOT NULL, 
	agency_id VARCHAR(64) NOT NULL, 
	agency_referral_id VARCHAR(100), 
	received_at DATETIME NOT NULL, 
	errors VARCHAR NOT NULL, 
	PRIMARY KEY (event_id)
);

CREATE INDEX ix_rejection_agency_id ON rejection (agency_id);

CREATE TABLE equality_monitoring (
	referral_id VARCHAR(40) NOT NULL, 
	ethnicity VARCHAR(100), 
	religion VARCHAR(100), 
	disability VARCHAR(100), 
	recorded_at DATETIME NOT NULL, 
	PRIMARY KEY (referral_id)
);

CREATE TABLE person (
	person_id VARCHAR(40) NOT NULL, 
	match_key VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (person_id), 
	UNIQUE (match_key)
);

CREATE TABLE agency (
	agency_id VARCHAR(64) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	key_salt VARCHAR(64) NOT NULL, 
	key_hash VARCHAR(128) NOT NULL, 
	nats_password_hash VARCHAR(100), 
	status VARCHAR(16) NOT NULL, 
	created_at DATETIME NOT NULL, 
	rotated_at DATETIME, 
	revoked_at DATETIME, 
	PRIMARY KEY (agency_id)
);

CREATE TABLE personal_data_access (
	id INTEGER NOT NULL, 
	referral_id VARCHAR(40) NOT NULL, 
	item VARCHAR(40) NOT NULL, 
	asked_by VARCHAR(200) NOT NULL, 
	purpose VARCHAR(500) NOT NULL, 
	asked_at DATETIME NOT NULL, 
	answered BOOLEAN NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_personal_data_access_referral_id ON personal_data_access (referral_id);

CREATE TABLE outbox (
	event_id VARCHAR(200) NOT NULL, 
	subject VARCHAR(300) NOT NULL, 
	payload BLOB NOT NULL, 
	headers VARCHAR NOT NULL, 
	created_at DATETIME NOT NULL, 
	sent_at DATETIME, 
	PRIMARY KEY (event_id)
);

CREATE INDEX ix_outbox_created_at ON outbox (created_at);

CREATE INDEX ix_outbox_sent_at ON outbox (sent_at);

CREATE TABLE inbox (
	message_key VARCHAR(400) NOT NULL, 
	consumer VARCHAR(100) NOT NULL, 
	processed_at DATETIME NOT NULL, 
	PRIMARY KEY (message_key)
);
