-- scheduling's schema as made by reroute before migrations (commit b61df52, create_all), sqlite

CREATE TABLE mentor (
	mentor_id VARCHAR(64) NOT NULL, 
	record VARCHAR NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (mentor_id)
);

CREATE TABLE sched_case (
	referral_id VARCHAR(40) NOT NULL, 
	agency_id VARCHAR(64) NOT NULL, 
	person_id VARCHAR(40), 
	facts VARCHAR, 
	tier VARCHAR(16), 
	assessment_number INTEGER NOT NULL, 
	cadence_tier VARCHAR(16), 
	lower_reviews INTEGER NOT NULL, 
	wellbeing_tier VARCHAR(16), 
	missing BOOLEAN NOT NULL, 
	staffed_only BOOLEAN NOT NULL, 
	needs VARCHAR, 
	status VARCHAR(24) NOT NULL, 
	mentor_id VARCHAR(64), 
	reason VARCHAR, 
	deadline_met BOOLEAN, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (referral_id)
);

CREATE INDEX ix_sched_case_agency_id ON sched_case (agency_id);

CREATE INDEX ix_sched_case_mentor_id ON sched_case (mentor_id);

CREATE INDEX ix_sched_case_person_id ON sched_case (person_id);

CREATE INDEX ix_sched_case_status ON sched_case (status);

CREATE TABLE session (
	session_id VARCHAR(40) NOT NULL, 
	referral_id VARCHAR(40) NOT NULL, 
	mentor_id VARCHAR(64) NOT NULL, 
	venue_id VARCHAR(64), 
	route VARCHAR, 
	mentor_route VARCHAR, 
	start DATETIME NOT NULL, 
	"end" DATETIME NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	sequence INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (session_id)
);

CREATE INDEX ix_session_mentor_id ON session (mentor_id);

CREATE INDEX ix_session_referral_id ON session (referral_id);

CREATE INDEX ix_session_start ON session (start);

CREATE TABLE venue (
	venue_id VARCHAR(64) NOT NULL, 
	record VARCHAR NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (venue_id)
);

CREATE TABLE mentor_leave (
	id INTEGER NOT NULL, 
	mentor_id VARCHAR(64) NOT NULL, 
	first_day DATE NOT NULL, 
	last_day DATE NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_mentor_leave_mentor_id ON mentor_leave (mentor_id);

CREATE TABLE calendar_token (
	token_hash VARCHAR(64) NOT NULL, 
	mentor_id VARCHAR(64) NOT NULL, 
	issued_at DATETIME NOT NULL, 
	revoked_at DATETIME, 
	PRIMARY KEY (token_hash)
);

CREATE INDEX ix_calendar_token_mentor_id ON calendar_token (mentor_id);

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
