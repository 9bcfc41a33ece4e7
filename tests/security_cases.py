"""Which tests prove that each abuse of issue 11 no longer works: the one place that says so.

`make security-doc` runs exactly these tests and writes the table in docs/security.md from their results
(tests/support/security_doc.py); tests/unit/test_security_doc.py fails when a test named here no longer exists or
when the table no longer matches this list. A test id is a pytest node id without parameters: every parameter of it
is run and counted. A case with no tests is listed in the table as having none.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    item: str  # the item of issue 11 ("1" to "11"; "low" for the low ones; "basic" for what held before);
    # "console" for the web console's (issue 14)
    abuse: str  # what an attacker tries, in a few words
    tests: tuple[str, ...]


BROWSER, E2E, INTEGRATION, UNIT = "tests/browser/", "tests/e2e/", "tests/integration/", "tests/unit/"

CASES: tuple[Case, ...] = (
    Case("basic", "an agency publishes as another agency, reads another's outcomes, risk or safeguarding, or uses "
                  "JetStream", (
        f"{INTEGRATION}test_nats_permissions.py::test_an_agency_cannot_publish_as_another",
        f"{INTEGRATION}test_nats_permissions.py::test_an_agency_cannot_read_what_is_not_its_own",
        f"{INTEGRATION}test_nats_permissions.py::test_an_agency_cannot_touch_streams",
        f"{E2E}test_intake_http.py::test_a_missing_wrong_or_revoked_key_gets_401_and_nothing_is_stored",
        (f"{INTEGRATION}test_nats_permissions.py::"
         "test_a_new_agency_is_admitted_after_a_reload_and_a_revoked_one_shut_out"),
    )),
    Case("1", "an agency registers as a service, the operator, or a look-alike of another agency's id", (
        f"{INTEGRATION}test_intake_agencies.py::test_a_service_or_operator_name_cannot_be_registered_as_an_agency",
        f"{E2E}test_intake_cli.py::test_agencies_add_refuses_a_reserved_id_and_a_look_alike",
    )),
    Case("1", "an agency subscribes to a service's, the operator's or another agency's inbox", (
        f"{INTEGRATION}test_nats_permissions.py::test_an_agency_can_never_subscribe_to_another_partys_inbox",
    )),
    Case("2", "one oversized referral, or one with unbounded lists, stalls the pipeline for every agency", (
        (f"{E2E}test_intake_limits.py::"
        "test_a_557_kib_referral_over_nats_is_rejected_naming_the_limit_and_the_next_one_is_scheduled"),
        f"{E2E}test_intake_limits.py::test_a_list_over_its_limit_is_rejected_naming_the_field_over_nats_and_over_http",
        f"{E2E}test_intake_http.py::test_a_body_over_the_limit_gets_413",
        f"{E2E}test_outbox_parking.py::test_an_event_nats_refuses_is_parked_and_the_events_behind_it_are_published",
        (f"{INTEGRATION}test_outbox_relay.py::"
        "test_an_event_over_the_servers_max_payload_is_parked_and_the_rows_behind_it_are_published"),
        f"{INTEGRATION}test_outbox_relay.py::test_an_event_over_the_streams_maximum_message_size_is_parked",
        (f"{INTEGRATION}test_streams.py::"
        "test_streams_are_created_with_a_maximum_message_size_and_an_existing_one_is_updated"),
    )),
    Case("3", "raw submissions stay on the broker in plain, out of erasure's reach and readable by risk and "
              "scheduling", (
        f"{E2E}test_raw_submissions.py::test_once_a_submission_is_accepted_no_plain_copy_of_it_stays_on_the_broker",
        f"{INTEGRATION}test_nats_permissions.py::test_risk_and_scheduling_cannot_reach_the_raw_submissions",
        f"{INTEGRATION}test_nats_permissions.py::test_each_service_may_use_its_own_consumers_and_streams",
        (f"{E2E}test_jetstream_permissions.py::"
        "test_the_services_run_on_their_own_jetstream_permissions_and_erasure_reaches_every_stream"),
        (f"{E2E}test_sealed_submissions.py::"
         "test_a_submission_intake_cannot_store_is_kept_sealed_and_never_left_plain_on_the_broker"),
    )),
    Case("4", "the container deployment is open: NATS without users, ports on every interface, a known password", (
        "tests/deploy/test_compose.py::test_the_stack_is_closed",
    )),
    Case("5", "agency A publishes first under agency B's message id, or predicts intake's event ids", (
        (f"{E2E}test_raw_submissions.py::"
        "test_another_agencys_message_id_drops_nothing_and_a_resend_is_still_processed_once"),
        (f"{INTEGRATION}test_intake_decisions.py::"
        "test_event_ids_are_unpredictable_outside_intake_and_the_same_for_the_same_decision"),
    )),
    Case("6", "an agency learns from its events that another agency referred the same child, or reads intake's "
              "facts for risk and scheduling", (
        (f"{E2E}test_jetstream_permissions.py::"
         "test_an_agency_learns_nothing_of_another_agencys_referral_of_the_same_child"),
        (f"{INTEGRATION}test_intake_decisions.py::"
         "test_what_an_agency_is_told_is_the_same_whether_or_not_another_agency_referred_the_child"),
        f"{INTEGRATION}test_nats_permissions.py::test_an_agency_cannot_read_the_stream_of_intakes_facts",
    )),
    Case("7", "deeply nested JSON or a 5,000-digit number gets a server error or dead-letters the body", (
        f"{E2E}test_intake_malformed.py::test_malformed_bodies_over_http_are_refused_specifically_and_none_is_stored",
        f"{E2E}test_intake_malformed.py::test_malformed_bodies_over_nats_are_refused_specifically_and_none_is_stored",
        f"{E2E}test_intake_openapi.py::test_no_request_gets_a_server_error",
    )),
    Case("8", "another user of the host reads the data dir, or the equality answers are stored in plain", (
        f"{E2E}test_up_supervision.py::test_the_data_dir_and_everything_in_it_are_closed_to_other_users",
        f"{UNIT}test_intake_crypto.py::test_unset_keys_are_generated_once_kept_private_and_reused",
        f"{E2E}test_intake_encryption.py::test_equality_answers_are_stored_encrypted_and_still_counted_by_the_audit",
        (f"{E2E}test_intake_encryption.py::"
        "test_answers_an_earlier_version_stored_in_plain_are_encrypted_after_the_upgrade_and_still_counted"),
    )),
    Case("9", "made-up API keys fill the CPU and slow every agency; wrong keys are tried without limit", (
        (f"{E2E}test_intake_http_abuse.py::"
        "test_many_wrong_keys_from_one_address_get_429_while_an_agency_elsewhere_is_served"),
        f"{E2E}test_intake_http_abuse.py::test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget",
        (f"{E2E}test_intake_http_abuse.py::"
        "test_a_key_kept_under_the_old_scrypt_hash_still_works_and_is_then_kept_as_the_fast_hash"),
        (f"{INTEGRATION}test_intake_key_checks.py::"
        "test_the_addresses_remembered_are_bounded_forgetting_the_least_recently_failed"),
    )),
    Case("10", "an agency is told a mentor's criminal-justice status or an operator's name", (
        (f"{E2E}test_agency_reasons.py::"
         "test_a_mentor_who_may_no_longer_mentor_is_neither_named_nor_explained_to_the_agency"),
        f"{E2E}test_agency_reasons.py::test_a_closure_tells_the_agency_only_that_the_service_closed_it",
        (f"{UNIT}test_agency_reasons.py::"
         "test_a_barred_mentor_is_explained_to_schedulers_and_only_unavailable_to_agencies"),
        f"{UNIT}test_intake_status.py::test_the_schedulers_reason_never_reaches_the_agency",
    )),
    Case("11", "a person acts as someone else: a self-declared `asked_by` or countersignature, a leaver who is "
               "still connected", (
        f"{E2E}test_people.py::test_a_person_cannot_act_as_another_and_the_access_log_names_the_real_one",
        f"{E2E}test_people.py::test_removing_a_person_drops_their_live_connection_and_shuts_them_out",
        f"{E2E}test_people.py::test_a_lowered_tier_waits_for_a_second_risk_lead_and_the_asker_cannot_countersign",
        f"{E2E}test_people.py::test_a_refused_or_lapsed_lowering_leaves_the_tier_in_force",
        f"{E2E}test_people.py::test_reroute_countersign_shows_the_lowering_and_signs_only_that_one",
        (f"{E2E}test_risk_flow.py::"
         "test_a_countersignature_naming_a_withdrawn_lowering_is_refused_and_the_new_one_stays_pending"),
        (f"{E2E}test_risk_flow.py::"
         "test_a_countersignature_of_a_case_reassessed_since_it_was_read_is_refused_until_it_is_read_again"),
        (f"{INTEGRATION}test_risk_countersign_race.py::"
         "test_a_withdrawal_while_another_replica_countersigns_leaves_one_decision_and_its_tier"),
        (f"{INTEGRATION}test_people_permissions.py::"
         "test_each_role_may_ask_exactly_its_requests_and_in_its_own_name_only"),
        f"{INTEGRATION}test_people_permissions.py::test_a_person_cannot_read_another_persons_replies",
        (f"{INTEGRATION}test_people_permissions.py::"
         "test_the_console_may_act_for_anyone_and_the_operator_account_for_no_one"),
    )),
    Case("basic", "an agency's durable outcomes (issue 12): it makes a consumer that pushes onto another agency's "
                  "subjects, binds, pulls from or reads another's consumer or a stream, or has the server answer onto "
                  "a service's request subject", (
        (f"{INTEGRATION}test_agency_outcomes.py::"
         "test_an_agency_cannot_make_a_consumer_not_even_one_filtered_to_its_own_subjects"),
        f"{INTEGRATION}test_agency_outcomes.py::test_an_agency_cannot_bind_or_read_another_agencys_consumer",
        (f"{INTEGRATION}test_agency_outcomes.py::"
         "test_an_agency_can_neither_pull_nor_read_nor_delete_anything_in_the_streams"),
        (f"{INTEGRATION}test_agency_outcomes.py::"
         "test_an_agency_offline_when_its_outcomes_are_published_reads_its_own_and_only_those_when_back"),
        f"{E2E}test_agency_outcomes.py::test_a_service_acts_on_no_message_that_asks_for_no_answer",
    )),
    Case("basic", "an agency withdraws another agency's referral (issue 12), or learns from the answer whether "
                  "another agency's reference exists", (
        f"{INTEGRATION}test_nats_permissions.py::test_an_agency_cannot_publish_as_another",
        f"{INTEGRATION}test_intake_decisions.py::test_another_agencys_referral_is_not_found_exactly_as_an_unknown_one",
        (f"{E2E}test_withdrawals.py::"
         "test_another_agencys_referral_is_not_found_through_both_doors_exactly_as_an_unknown_one"),
    )),
    Case("console", "guessing a person's console password without end, from one address or many", (
        f"{BROWSER}test_alerts_page.py::test_five_wrong_passwords_lock_the_log_in_until_an_admin_issues_a_new_one",
        f"{INTEGRATION}test_console_logins.py::test_the_fifth_wrong_password_in_a_row_locks_and_a_right_one_clears_the_count",
        f"{UNIT}test_console_app.py::test_failed_log_ins_are_limited_per_address_and_successful_ones_are_not_counted",
        f"{UNIT}test_console_login_limit.py::test_ipv6_addresses_in_one_64_share_its_limit",
    )),
    Case("console", "many visits to the log-in page without a cookie, to fill the console's memory or push people's "
         "log-ins out", (
        f"{UNIT}test_console_sessions.py::test_requests_for_the_log_in_page_keep_nothing_and_a_log_in_still_works",
        f"{UNIT}test_console_sessions.py::test_a_log_in_survives_a_flood_of_visitors",
        f"{UNIT}test_console_login_limit.py::test_a_refusal_adds_nothing_and_a_full_table_never_keeps_a_newcomer_out",
    )),
    Case("console", "a form posted without the session's CSRF token, or from another site", (
        f"{BROWSER}test_alerts_page.py::test_a_form_without_the_csrf_token_changes_nothing",
        f"{UNIT}test_console_app.py::test_every_route_is_csrf_checked",
    )),
    Case("console", "a person without the role reaches a page, a fragment, a live stream or an action by its URL", (
        (f"{BROWSER}test_alerts_page.py::"
         "test_without_the_dsl_role_the_page_and_the_acknowledgement_are_refused_by_url_too"),
        f"{BROWSER}test_risk_page.py::test_without_the_risk_lead_role_every_page_and_decision_is_refused_by_url_too",
        f"{UNIT}test_console_app.py::test_every_route_declares_who_may_use_it",
        f"{UNIT}test_console_app.py::test_an_areas_routes_need_its_roles",
        f"{BROWSER}test_traces_page.py::test_without_the_operator_role_traces_are_refused_by_url_too",
        (f"{BROWSER}test_traces_page.py::"
         "test_without_a_role_that_may_open_referrals_a_referral_s_trace_is_refused_by_url_too"),
        (f"{BROWSER}test_traces_page.py::"
         "test_a_scheduler_follows_the_link_on_a_referral_s_page_to_its_waterfall_and_no_further"),
    )),
    Case("console", "a session key planted in a browser before log-in (session fixation)", (
        f"{BROWSER}test_console_abuse.py::test_a_session_key_planted_before_log_in_is_never_logged_in",
    )),
    Case("console", "a link that logs in to the console and then sends the person to another site", (
        f"{UNIT}test_console_app.py::test_after_log_in_only_a_path_on_the_console",
    )),
    Case("console", "a removed person keeps using the console they had open", (
        f"{BROWSER}test_console_abuse.py::test_a_removed_persons_open_console_is_shut_at_their_next_request",
        f"{INTEGRATION}test_console_logins.py::test_a_removed_person_cannot_log_in_and_comes_back_without_their_old_password",
    )),
    Case("console", "the console listens beyond this machine without TLS", (
        f"{UNIT}test_console_app.py::test_it_listens_beyond_loopback_only_over_tls",
    )),
    Case("console", "a child's name is shown on a list of alerts or risk reviews, or on a referral's trace", (
        f"{BROWSER}test_console_abuse.py::test_no_list_shows_a_childs_name",
        (f"{BROWSER}test_console_abuse.py::"
         "test_no_page_of_a_referral_s_trace_shows_a_childs_name_even_from_a_span_that_carries_one"),
    )),
    Case("basic", "an agency names another agency's submission or outcome subject, or a service's event subject, as "
                  "the reply subject of its own message, so that the server's answer (a PubAck, an error, a "
                  "consumer's information, an acknowledgement's empty answer) is taken for a referral or an event "
                  "there, or kept by a stream and delivered to the other agency", (
        (f"{E2E}test_jetstream_permissions.py::"
         "test_the_servers_replies_an_agency_aims_at_another_agency_or_at_the_services_stay_in_its_own_account"),
        (f"{E2E}test_agency_outcomes.py::"
         "test_a_service_answers_a_request_only_onto_an_inbox_never_onto_an_agencys_subjects"),
        f"{UNIT}test_server_replies.py::test_each_answer_of_the_server_is_recognised",
        f"{UNIT}test_server_replies.py::test_no_message_of_ours_or_an_agencys_is_taken_for_one",
        f"{UNIT}test_server_replies.py::test_no_example_referral_is_taken_for_one",
        (f"{E2E}test_notifier.py::"
         "test_the_servers_answer_aimed_at_an_alert_subject_is_dropped_and_the_next_alert_emailed"),
    )),
    Case("11", "the installation's operator account reads people's requests (a name and birth date looked up), raw "
               "referrals or anyone's replies, or asks requests that record no one (a young person's export or "
               "erasure, agencies, purging)", (
        (f"{INTEGRATION}test_people_permissions.py::"
         "test_the_operator_account_asks_nothing_a_person_may_ask_not_even_what_records_no_one"),
        f"{INTEGRATION}test_people_permissions.py::test_the_operator_account_reads_no_ones_requests_or_replies",
    )),
    Case("11", "the installation's operator account gets a stored raw submission into its own inbox (`STREAM.MSG.GET`, "
               "`DIRECT.GET`), consumes, pulls or copies `SUBMISSIONS`, reads `INTAKE`, lists the streams, purges or "
               "deletes a stream, or withdraws a referral in an agency's name (it had `$JS.API.>`)", (
        (f"{INTEGRATION}test_nats_permissions.py::"
         "test_the_operator_account_cannot_read_raw_submissions_nor_purge_or_delete_a_stream"),
        (f"{INTEGRATION}test_nats_permissions.py::"
         "test_the_operator_account_reads_the_demos_alerts_and_asks_pings_on_its_own_permissions"),
    )),
    Case("11", "the installation's operator account reconfigures a stream to take in people's requests and republish "
               "them to its inbox, or cuts a stream's limits (it could update all seven, for provisioning); purges "
               "`REFERRALS`, or publishes a referral on an agency's subject or a fact on intake's (the upgrade's)", (
        (f"{INTEGRATION}test_nats_permissions.py::"
         "test_the_operator_account_cannot_reconfigure_a_stream_to_capture_requests_or_empty_it"),
        (f"{INTEGRATION}test_nats_permissions.py::"
         "test_the_operator_account_cannot_read_raw_submissions_nor_purge_or_delete_a_stream"),
    )),
    Case("11", "the provisioner, which administers the streams, reads raw submissions directly (`STREAM.MSG.GET`, "
               "`DIRECT.GET`, a consumer), people's requests or anyone's replies, or asks a request; or its password is "
               "given to the CLI containers or the NATS process (a stream's administrator can still copy any stream "
               "into `REFERRALS` and read it there: its password stays where provisioning runs)", (
        f"{INTEGRATION}test_nats_permissions.py::test_the_provisioner_cannot_read_raw_submissions_nor_ask_anything",
        f"{INTEGRATION}test_nats_permissions.py::test_the_provisioner_reads_nothing_but_its_own_replies",
        f"{INTEGRATION}test_nats_permissions.py::test_the_provisioner_provisions_on_its_own_permissions",
        (f"{INTEGRATION}test_streams.py::"
         "test_an_install_of_the_earlier_layout_is_migrated_with_its_pending_submissions"),
        (f"{UNIT}test_provisioner_secrets.py::"
         "test_in_compose_only_the_migrate_step_has_the_provisioners_password_and_nats_its_hash"),
        ("tests/deploy/test_k8s.py::"
         "test_only_the_migrate_job_holds_the_provisioners_password_and_nats_only_its_hash"),
    )),
    Case("low", "a calendar feed's token is written to the access log", (
        f"{E2E}test_access_log.py::test_a_calendar_feed_token_is_not_written_to_the_log",
        f"{UNIT}test_http_access_log.py::test_the_route_is_logged_not_the_token_or_the_query",
    )),
    Case("low", "Rich markup, control or bidi characters in a name crash the CLI or plant terminal links", (
        f"{E2E}test_cli_safety.py::test_names_with_markup_print_as_plain_text_and_session_ids_are_shown",
        f"{E2E}test_rejections_never_echo.py::test_a_name_with_control_or_bidi_characters_is_refused_naming_the_field",
    )),
    Case("low", "a name spelt with look-alike letters escapes person matching and erasure; the matching key cannot "
                "be rotated", (
        (f"{E2E}test_person_lookalikes.py::"
        "test_a_name_spelt_with_look_alike_letters_is_the_same_young_person_for_matching_and_erasure"),
        (f"{E2E}test_person_lookalikes.py::"
        "test_after_a_new_matching_key_and_rematch_known_young_people_are_still_recognised"),
        (f"{INTEGRATION}test_person_rematch.py::"
        "test_after_the_upgrade_known_people_are_recognised_and_rematch_joins_look_alike_spellings"),
    )),
    Case("low", "a rejection echoes the value given (a name typed in the wrong field is stored and published)", (
        f"{E2E}test_rejections_never_echo.py::test_a_rejection_names_each_field_and_rule_but_never_the_value_given",
        f"{UNIT}test_intake_dates.py::test_every_date_problem_is_named_and_none_echoes_the_date_given",
    )),
    Case("low", "an old encryption key can never be retired", (
        (f"{E2E}test_intake_encryption.py::"
         "test_after_reencrypt_intake_runs_on_the_new_key_alone_and_reads_everything_it_kept"),
    )),
    Case("low", "a forged Host header is reflected into `status_url`", (
        f"{E2E}test_intake_http_abuse.py::test_a_forged_host_header_is_not_reflected_in_the_reply",
    )),
    Case("low", "the README's NATS example fails for a real agency user", (
        (f"{E2E}test_readme_examples.py::"
         "test_the_nats_example_submits_a_referral_with_a_registered_agencys_own_credentials"),
        f"{E2E}test_readme_examples.py::test_without_the_inbox_prefix_the_same_example_fails_as_the_readme_says",
    )),
    Case("low", "`person export --out` writes a world-readable file or follows a symlink", (
        f"{E2E}test_cli_safety.py::test_a_person_export_goes_only_to_a_new_private_file_and_never_through_a_symlink",
    )),
    Case("console", "made-up spans posted to the console's span receiver (no token or a wrong one, a browser's "
                    "cross-site form), or a body too large or of another type, to fill or poison its store", (
        (f"{INTEGRATION}test_console_span_receiver.py::"
         "test_only_the_services_with_the_token_may_post_spans_and_every_refusal_says_why"),
        f"{INTEGRATION}test_console_span_receiver.py::test_without_a_spans_token_the_console_receives_no_spans",
    )),
    Case("console", "someone whose roles may not erase erases a young person's spans from the console's store over "
                    "NATS; a person's spans outlive their erasure in a console with a volume of its own", (
        f"{INTEGRATION}test_people_permissions.py::test_each_role_may_ask_exactly_its_requests_and_in_its_own_name_only",
        (f"{INTEGRATION}test_people_permissions.py::"
         "test_the_console_answers_an_admins_erasure_of_spans_on_its_own_permissions"),
        f"{E2E}test_privacy_ops.py::test_export_gathers_every_service_and_erase_removes_the_person_everywhere",
    )),
)
