use super::*;
use serde_json::json;

fn fields_of(errors: Vec<FieldError>) -> Vec<String> {
    errors.into_iter().map(|e| e.field).collect()
}

#[test]
fn create_parses_recipients_timing_and_payload() {
    let c = CreateSchedules::parse(&json!({
        "workflow": "digest", "recipients": ["u1", {"id": "p1", "collection": "projects"}, "u1"],
        "repeats": [{"frequency": "daily", "hours": 9}], "data": {"a": 1}, "tenant": "acme",
        "scheduled_at": "2026-01-01T00:00:00+02:00", "ending_at": null,
    }))
    .expect("valid");
    assert_eq!(c.workflow, "digest");
    assert_eq!(c.recipients.len(), 2, "duplicates collapse");
    assert_eq!(c.fields.repeats.map(|r| r.len()), Some(1));
    assert!(matches!(c.fields.tenant, Change::Set(ref t) if t.id == "acme"));
    assert!(matches!(c.fields.ending_at, Change::Clear));
    assert!(
        matches!(c.fields.scheduled_at, Change::Set(t) if t.to_rfc3339() == "2025-12-31T22:00:00+00:00")
    );
}

#[test]
fn create_refuses_bad_input_naming_each_field() {
    let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    for (body, fields) in [
        (
            json!({"recipients": ["u1"], "repeats": [{"frequency": "daily"}]}),
            vec!["workflow"],
        ),
        (
            json!({"workflow": "d", "repeats": [{"frequency": "daily"}]}),
            vec!["workflow", "recipients"],
        ),
        (
            json!({"workflow": "digest", "recipients": many, "repeats": [{"frequency": "daily"}]}),
            vec!["recipients"],
        ),
        (
            json!({"workflow": "digest", "recipients": []}),
            vec!["recipients", "repeats"],
        ),
        (
            json!({"workflow": "digest", "recipients": ["a/b"], "repeats": [{"frequency": "daily"}]}),
            vec!["recipients[0]"],
        ),
        (
            json!({"workflow": "digest", "recipients": ["u1"]}),
            vec!["repeats"],
        ),
        (
            json!({"workflow": "digest", "recipients": ["u1"], "repeats": [{"frequency": "often"}]}),
            vec!["repeats[0].frequency"],
        ),
        (
            json!({"workflow": "digest", "recipients": ["u1"], "scheduled_at": "tomorrow"}),
            vec!["scheduled_at", "repeats"],
        ),
        (
            json!({"workflow": "digest", "recipients": ["u1"], "repeats": [{"frequency": "daily"}], "data": [1]}),
            vec!["data"],
        ),
        (
            json!({"workflow": "digest", "recipients": ["u1"], "repeats": [{"frequency": "daily"}], "ending_at": 5}),
            vec!["ending_at"],
        ),
        (json!([]), vec!["body"]),
    ] {
        let got = CreateSchedules::parse(&body).err().map(fields_of);
        assert_eq!(
            got,
            Some(fields.iter().map(|f| f.to_string()).collect()),
            "{body}"
        );
    }
}

#[test]
fn update_keeps_absent_fields_and_clears_null_ones() {
    let u = UpdateSchedules::parse(&json!({
        "schedule_ids": ["123E4567-E89B-42D3-A456-426614174000"], "data": null,
        "repeats": [{"frequency": "weekly"}],
    }))
    .expect("valid");
    assert_eq!(u.ids, ["123e4567-e89b-42d3-a456-426614174000"]);
    assert!(matches!(u.fields.data, Change::Clear));
    assert!(matches!(u.fields.tenant, Change::Keep));
    assert!(u.fields.repeats.is_some());
    let ids: Vec<String> = (0..101).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for (body, field) in [
        (json!({"schedule_ids": ids}), "schedule_ids"),
        (json!({"schedule_ids": []}), "schedule_ids"),
        (json!({"schedule_ids": ["nope"]}), "schedule_ids[0]"),
    ] {
        assert_eq!(
            UpdateSchedules::parse(&body).err().map(fields_of),
            Some(vec![field.to_owned()]),
            "{body}"
        );
        assert_eq!(
            parse_delete(&body).err().map(fields_of),
            Some(vec![field.to_owned()])
        );
    }
}

#[test]
fn bulk_entries_each_take_one_recipient_and_errors_say_which_entry() {
    let ok = parse_bulk(&json!({"schedules": [
        {"workflow": "digest", "recipient": "u1", "repeats": [{"frequency": "daily"}]},
        {"workflow": "digest", "recipient": {"id": "p", "collection": "c"}, "scheduled_at": "2026-01-01T00:00:00Z"},
    ]}))
    .expect("valid");
    assert_eq!(ok.len(), 2);
    let err = parse_bulk(&json!({"schedules": [
        {"workflow": "digest", "recipient": "u1", "repeats": [{"frequency": "daily"}]},
        {"workflow": "digest", "recipient": "a#b", "repeats": [{"frequency": "x"}]},
        {"workflow": "digest", "repeats": [{"frequency": "daily"}]},
    ]}))
    .err()
    .map(fields_of);
    assert_eq!(
        err,
        Some(vec![
            "schedules[1].recipient".to_owned(),
            "schedules[1].repeats[0].frequency".to_owned(),
            "schedules[2].recipient".to_owned()
        ])
    );
    let too_many: Vec<Value> = (0..1001).map(|_| json!({})).collect();
    assert_eq!(
        parse_bulk(&json!({"schedules": too_many}))
            .err()
            .map(fields_of),
        Some(vec!["schedules".to_owned()])
    );
}
