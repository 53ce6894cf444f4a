use super::*;

#[test]
fn approvals_need_names_and_a_reachable_quorum() {
    let c = ok(&format!("{MINIMAL}approvals:\n  from: [alice]\n"));
    let a = c.approvals.expect("approvals");
    assert_eq!(a.standard.required, 1);
    assert_eq!(
        a.hotfix, a.standard,
        "hotfix defaults to the standard quorum"
    );
    assert_eq!(a.timeout, defaults::APPROVAL_TIMEOUT);

    assert_eq!(
        error(&format!("{MINIMAL}approvals:\n  required: 3\n")),
        "cutover.yaml:5:1: `approvals` is missing the required field `from` \
         (the names that may approve, e.g. `[alice, bob, carol]`)"
    );
    assert_eq!(
        error(&format!(
            "{MINIMAL}approvals:\n  required: 3\n  from: [alice, bob]\n"
        )),
        "cutover.yaml:6:13: `required` is 3 but `from` names only 2 approver(s), so the quorum \
         could never be reached; name more approvers or require at most 2"
    );
    assert_eq!(
        error(&format!("{MINIMAL}approvals:\n  from: [alice, alice]\n")),
        "cutover.yaml:6:17: `alice` is named twice in `from`"
    );
    let e = error(&format!("{MINIMAL}approvals:\n  from: [\"al ice\"]\n"));
    assert!(e.starts_with("cutover.yaml:6:10:"), "{e}");
    let e = error(&format!(
        "{MINIMAL}approvals:\n  from: [a]\n  hotfix: {{ required: 2, from: [b] }}\n"
    ));
    assert!(e.contains("`required` is 2 but `from` names only 1"), "{e}");
}

#[test]
fn windows_name_a_real_time_zone_days_and_hours() {
    let c = ok(&format!(
        "{MINIMAL}windows:\n  timezone: America/New_York\n  allow:\n    - hours: \"00:00-24:00\"\n"
    ));
    let w = c.windows.expect("windows");
    assert_eq!(w.allow[0].days, 0b111_1111, "every day by default");
    assert_eq!((w.allow[0].from_minute, w.allow[0].until_minute), (0, 1440));

    let e = error(&format!("{MINIMAL}windows:\n  timezone: Europe/Berln\n"));
    assert!(
        e.starts_with("cutover.yaml:6:13: `timezone` must be an IANA"),
        "{e}"
    );
    assert!(e.contains("did you mean `Europe/Berlin`"), "{e}");
    let e = error(&format!(
        "{MINIMAL}windows:\n  timezone: UTC\n  allow:\n    - {{ days: [mon, funday], hours: \"09:00-17:00\" }}\n"
    ));
    assert!(
        e.starts_with("cutover.yaml:8:21: `days` takes weekdays"),
        "{e}"
    );
    let e = error(&format!(
        "{MINIMAL}windows:\n  timezone: UTC\n  allow:\n    - {{ hours: \"9-17\" }}\n"
    ));
    assert!(e.contains("`hours` must be two times of day"), "{e}");
    let e = error(&format!(
        "{MINIMAL}windows:\n  timezone: UTC\n  freezes:\n    - {{ from: 2026-12-20, until: 2026-12-19, reason: x }}\n"
    ));
    assert!(
        e.contains("`until` (2026-12-20T00:00:00) must be after `from` (2026-12-20T00:00:00)"),
        "{e}"
    );
    let e = error(&format!(
        "{MINIMAL}windows:\n  timezone: UTC\n  freezes:\n    - {{ from: 2026-12-20, until: soon, reason: x }}\n"
    ));
    assert!(
        e.contains("`until` must be a date like `2026-12-20`"),
        "{e}"
    );
    let e = error(&format!(
        "{MINIMAL}windows:\n  timezone: UTC\n  freezes:\n    - {{ from: 2026-12-20, until: 2026-12-24 }}\n"
    ));
    assert!(e.contains("missing the required field `reason`"), "{e}");
}
