use super::*;

#[test]
fn api_settings_are_booleans() {
    let c = ok(&format!("{MINIMAL}api:\n  read_auth: true\n"));
    assert_eq!(
        c.api,
        ApiSpec {
            read_auth: true,
            allow_remote_open_reads: false
        }
    );
    assert_eq!(ok(&format!("{MINIMAL}api: {{}}\n")).api, ApiSpec::default());
    assert_eq!(
        error(&format!("{MINIMAL}api:\n  read_auth: yes please\n")),
        "cutover.yaml:6:14: `read_auth` must be `true` or `false`, got `yes please`"
    );
    let e = error(&format!("{MINIMAL}api:\n  read_uath: true\n"));
    assert!(e.starts_with("cutover.yaml:6:3:"), "{e}");
    assert!(e.contains("did you mean `read_auth`"), "{e}");
}
