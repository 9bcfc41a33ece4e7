-- risk's schema as made by reroute before migrations (commit b61df52, create_all), postgresql

CREATE TABLE risk_case (
	referral_id VARCHAR(40) NOT NULL, 
	agency_id VARCHAR(64) NOT NULL, 
	facts VARCHAR NOT NULL, 
	latest VARCHAR NOT NULL, 
	tier VARCHAR(16) NOT NULL, 
	computed_tier VARCHAR(16) NOT NULL, 
	override VARCHAR(16), 
	rules_version VARCHAR(40) NOT NULL, 
	review_due TIMESTAMP WITH TIME ZONE NOT NULL, 
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (referral_id)
);

CREATE INDEX ix_risk_case_agency_id ON risk_case (agency_id);

CREATE INDEX ix_risk_case_review_due ON risk_case (review_due);

CREATE INDEX ix_risk_case_tier ON risk_case (tier);

CREATE TABLE assessment (
	event_id VARCHAR(120) NOT NULL, 
	referral_id VARCHAR(40) NOT NULL, 
	number INTEGER NOT NULL, 
	assessed_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	computed_tier VARCHAR(16) NOT NULL, 
	final_tier VARCHAR(16) NOT NULL, 
	cause VARCHAR(16) NOT NULL, 
	changed_by VARCHAR(200), 
	rules_version VARCHAR(40) NOT NULL, 
	event VARCHAR NOT NULL, 
	PRIMARY KEY (event_id)
);

CREATE INDEX ix_assessment_referral_id ON assessment (referral_id);

CREATE TABLE safeguarding_alert (
	event_id VARCHAR(120) NOT NULL, 
	referral_id VARCHAR(40) NOT NULL, 
	rule_id VARCHAR(80) NOT NULL, 
	raised_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	deadline TIMESTAMP WITH TIME ZONE NOT NULL, 
	actions VARCHAR NOT NULL, 
	PRIMARY KEY (event_id)
);

CREATE INDEX ix_safeguarding_alert_referral_id ON safeguarding_alert (referral_id);

CREATE TABLE outbox (
	event_id VARCHAR(200) NOT NULL, 
	subject VARCHAR(300) NOT NULL, 
	payload BYTEA NOT NULL, 
	headers VARCHAR NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	sent_at TIMESTAMP WITH TIME ZONE, 
	PRIMARY KEY (event_id)
);

CREATE INDEX ix_outbox_created_at ON outbox (created_at);

CREATE INDEX ix_outbox_sent_at ON outbox (sent_at);

CREATE TABLE inbox (
	message_key VARCHAR(400) NOT NULL, 
	consumer VARCHAR(100) NOT NULL, 
	processed_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (message_key)
);
