//! `POST /v1.0/sw-update-strategy`: the create body, read as dcmanager reads it (booleans as
//! JSON booleans or `"true"`/`"false"`, `stop-on-failure` only as a string, numbers as ints or
//! numeric strings), checked in the original's order with its exact 400 details (spec
//! dcmanager-api.md §3.3). What needs the System Controller's own state (a group's existence,
//! the release's state there) is asked of [`Lookups`].

use serde_json::{Map, Value};

use super::DcStrategyType;
use crate::subcloud::ApplyType;

/// What validation asks of the System Controller.
pub trait Lookups {
    /// The group named or numbered `reference`, as (apply type, max parallel), if it exists.
    fn group(&self, reference: &str) -> Option<(ApplyType, u32)>;
    /// Whether the release is deployed (or committed) on the System Controller.
    fn release_deployed(&self, release_id: &str) -> bool;
    /// The System Controller's own software version (`MM.mm`).
    fn sc_version(&self) -> String;
    /// The software version (`MM.mm`) of a release the System Controller holds.
    fn release_version(&self, release_id: &str) -> Option<String>;
    /// The USM states (`available`, `deployed`...) of the System Controller's releases of
    /// software version `MM.mm`.
    fn version_states(&self, version: &str) -> Vec<String>;
    /// Every software version the System Controller knows: its own and its releases'.
    fn versions(&self) -> Vec<String>;
    /// Whether a software deploy runs on the System Controller.
    fn deploy_in_progress(&self) -> bool;
}

/// What a prestage (or a sw-deploy with prestage) asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrestageAsk {
    /// `MM.mm`.
    pub sw_version: String,
    pub for_sw_deploy: bool,
    pub force: bool,
    /// As sent (base64); it decodes.
    pub sysadmin_password: String,
}

/// A validated create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub kind: DcStrategyType,
    /// As asked, or the group's; None when neither said (shown as `null`).
    pub apply_type: Option<ApplyType>,
    /// 1 for serial; else as asked, the group's, or 2.
    pub max_parallel: u32,
    pub stop_on_failure: bool,
    pub cloud_name: Option<String>,
    pub group: Option<String>,
    pub release_id: Option<String>,
    pub delete: bool,
    /// For prestage, and sw-deploy with prestage.
    pub prestage: Option<PrestageAsk>,
}

/// Default `max-parallel-subclouds`.
pub const DEFAULT_MAX_PARALLEL: u32 = 2;

/// A 400 detail: the original's text.
pub type Refusal = String;

const SW_DEPLOY_BOOLEANS: [&str; 5] =
    ["snapshot", "rollback", "delete", "cleanup", "with_prestage"];

fn boolean(body: &Map<String, Value>, key: &str) -> Result<bool, Refusal> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(format!(
            "Invalid value '{}' for {key} - must be True/False or 'true'/'false'",
            shown(other)
        )),
    }
}

/// A value as Python would print it in the original's messages.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

fn text<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Validates `body` in dcmanager's order.
pub fn validate(
    body: &Map<String, Value>,
    lookups: &dyn Lookups,
) -> Result<CreateRequest, Refusal> {
    // 1.
    if body.is_empty() {
        return Err("Body required".into());
    }
    // 2.
    boolean(body, "force")?;
    // 3.
    let apply_type = match body.get("subcloud-apply-type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            s.parse::<ApplyType>()
                .map_err(|_| "subcloud-apply-type invalid".to_string())?,
        ),
        Some(_) => return Err("subcloud-apply-type invalid".into()),
    };
    let cloud_name = text(body, "cloud_name").map(str::to_string);
    let group = match body.get("subcloud_group") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let asked_max = body.get("max-parallel-subclouds").filter(|v| !v.is_null());
    if group.is_some() && cloud_name.is_some() {
        return Err("cloud_name and subcloud_group are mutually exclusive".into());
    }
    let mut group_settings = None;
    if let Some(group) = &group {
        if apply_type.is_some() || asked_max.is_some() {
            return Err(
                "subcloud-apply-type and max-parallel-subclouds are not allowed when \
                 subcloud_group is provided"
                    .into(),
            );
        }
        group_settings = Some(lookups.group(group).ok_or("Invalid group_id")?);
    }
    let type_text = body.get("type").and_then(Value::as_str);
    let with_prestage = boolean(body, "with_prestage").unwrap_or(false);
    let max_parallel = match asked_max {
        None => None,
        Some(value) => {
            let n = match value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| {
                format!(
                    "max-parallel-subclouds invalid value. Value: {}",
                    shown(value)
                )
            })?;
            let prestage = type_text == Some("prestage") || with_prestage;
            let (limit, what) = if prestage {
                (250, "For prestage,".to_string())
            } else {
                (
                    5000,
                    format!("For {} strategy,", type_text.unwrap_or("None")),
                )
            };
            if !(1..=limit).contains(&n) {
                return Err(format!(
                    "Invalid max-parallel-subclouds value: {n}. {what} the value must be \
                     between 1 and {limit}."
                ));
            }
            Some(n as u32)
        }
    };
    // 4.
    let kind = match type_text {
        None => return Err("type required".into()),
        Some(t) => t
            .parse::<DcStrategyType>()
            .map_err(|_| "type invalid".to_string())?,
    };
    // 5.
    let mut release_id = None;
    let mut delete = false;
    let mut prestage = None;
    if kind == DcStrategyType::SwDeploy {
        let mut flags = std::collections::BTreeMap::new();
        for key in SW_DEPLOY_BOOLEANS {
            flags.insert(key, boolean(body, key)?);
        }
        if text(body, "sysadmin_password").is_some() && !flags["with_prestage"] {
            return Err("The with_prestage option is required when using sysadmin_password".into());
        }
        release_id = text(body, "release_id").map(str::to_string);
        let (rollback, cleanup) = (flags["rollback"], flags["cleanup"]);
        match &release_id {
            None if !rollback && !cleanup => {
                return Err("Release ID is required for strategy type: sw-deploy.".into());
            }
            Some(id) if !lookups.release_deployed(id) => {
                return Err(format!(
                    "Release ID: {id} not found or not deployed in the SystemController"
                ));
            }
            _ => {}
        }
        let kube = text(body, "kube_upgrade").is_some();
        if flags["snapshot"] && (rollback || cleanup) {
            return Err(
                "Option snapshot cannot be used with any of the following options: \
                        rollback or cleanup."
                    .into(),
            );
        }
        if flags["delete"] && (rollback || cleanup) {
            return Err(
                "Option delete cannot be used with any of the following options: \
                        rollback or cleanup."
                    .into(),
            );
        }
        if rollback && (release_id.is_some() || cleanup || kube || flags["with_prestage"]) {
            return Err(
                "Option rollback cannot be used with any of the following options: \
                        release_id, cleanup, kube_upgrade or with_prestage."
                    .into(),
            );
        }
        if cleanup && (release_id.is_some() || flags["with_prestage"] || kube) {
            return Err(
                "Option cleanup cannot be used with any of the following options: \
                        release_id, with_prestage or kube_upgrade."
                    .into(),
            );
        }
        delete = flags["delete"];
        if flags["with_prestage"] {
            let version = release_id
                .as_deref()
                .and_then(|id| lookups.release_version(id))
                .unwrap_or_else(|| lookups.sc_version());
            prestage = Some(prestage_checks(body, lookups, version, true, false)?);
        }
    }
    // 6.
    if kind == DcStrategyType::Prestage {
        let for_sw_deploy = boolean(body, "for_sw_deploy")?;
        boolean(body, "for_install")?;
        let version = match body.get("release") {
            None | Some(Value::Null) => lookups.sc_version(),
            Some(v) => shown(v),
        };
        if !is_mm_mm(&version) {
            return Err(
                "Specified release format is not supported. Version format must be MM.mm.".into(),
            );
        }
        let force = boolean(body, "force")?;
        prestage = Some(prestage_checks(
            body,
            lookups,
            version,
            for_sw_deploy,
            force,
        )?);
    }
    // 7.
    let stop_on_failure = match body.get("stop-on-failure") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "true" => true,
        Some(Value::String(s)) if s == "false" => false,
        Some(_) => return Err("stop-on-failure invalid".into()),
    };
    let (apply_type, max_parallel) = match group_settings {
        Some((t, n)) => (Some(t), n),
        None => (apply_type, max_parallel.unwrap_or(DEFAULT_MAX_PARALLEL)),
    };
    Ok(CreateRequest {
        kind,
        apply_type,
        max_parallel: if apply_type == Some(ApplyType::Serial) {
            1
        } else {
            max_parallel
        },
        stop_on_failure,
        cloud_name,
        group,
        release_id,
        delete,
        prestage,
    })
}

fn is_mm_mm(version: &str) -> bool {
    let b = version.as_bytes();
    b.len() == 5
        && b[2] == b'.'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 2 || c.is_ascii_digit())
}

/// `MM.mm` as a pair, for comparing.
fn numbers(version: &str) -> (u32, u32) {
    let (major, minor) = version.split_once('.').unwrap_or((version, "0"));
    (major.parse().unwrap_or(0), minor.parse().unwrap_or(0))
}

/// The prestage checks of the System Controller's state and the password, in the original's
/// order (`validate_prestage`, `get_validated_sw_version_for_prestage`).
fn prestage_checks(
    body: &Map<String, Value>,
    lookups: &dyn Lookups,
    version: String,
    for_sw_deploy: bool,
    force: bool,
) -> Result<PrestageAsk, Refusal> {
    let states = lookups.version_states(&version);
    let own = version == lookups.sc_version();
    if for_sw_deploy {
        if numbers(&version) < (24, 9) {
            return Err(
                "The requested software version is not supported, cannot prestage for \
                        software deploy."
                    .into(),
            );
        }
        if !own && !states.iter().any(|s| s == "deployed" || s == "committed") {
            return Err(
                "The requested software version not found or not deployed in the \
                        system controller, cannot prestage for software deploy."
                    .into(),
            );
        }
    } else {
        let versions = lookups.versions();
        if !versions.contains(&version) {
            return Err(format!(
                "Error: invalid release version parameter. {version} is not a supported \
                 release version ({})",
                versions.join(", ")
            ));
        }
        if !own
            && !states
                .iter()
                .any(|s| matches!(s.as_str(), "available" | "deployed" | "committed"))
        {
            return Err("The requested release is not ready to be installed.".into());
        }
    }
    if lookups.deploy_in_progress() {
        return Err(
            "Prestage operations are not allowed while system controller has a \
                    software deployment in progress."
                .into(),
        );
    }
    let Some(password) = text(body, "sysadmin_password") else {
        return Err("subcloud sysadmin_password required".into());
    };
    use base64::Engine;
    match base64::engine::general_purpose::STANDARD.decode(password) {
        Ok(bytes) if std::str::from_utf8(&bytes).is_ok() => {}
        _ => {
            return Err(
                "Failed to decode subcloud sysadmin_password, verify the password is \
                        base64 encoded"
                    .into(),
            );
        }
    }
    Ok(PrestageAsk {
        sw_version: version,
        for_sw_deploy,
        force,
        sysadmin_password: password.to_string(),
    })
}

/// `PATCH /v1.0/subclouds/<ref>/prestage`'s body (spec §5): the password first, then the
/// options (`true`/`false`/`t`/`f`), then the release as a prestage strategy's, with that
/// route's messages.
pub fn validate_subcloud_prestage(
    body: &Map<String, Value>,
    lookups: &dyn Lookups,
) -> Result<PrestageAsk, Refusal> {
    if text(body, "sysadmin_password").is_none() {
        return Err("sysadmin_password is required.".into());
    }
    let flag = |key: &str| -> Result<bool, Refusal> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if matches!(s.to_lowercase().as_str(), "true" | "t") => Ok(true),
            Some(Value::String(s)) if matches!(s.to_lowercase().as_str(), "false" | "f") => {
                Ok(false)
            }
            Some(other) => Err(format!("Invalid value for {key} option: {}", shown(other))),
        }
    };
    let force = flag("force")?;
    flag("for_install")?;
    let for_sw_deploy = flag("for_sw_deploy")?;
    let version = match body.get("release") {
        None | Some(Value::Null) => lookups.sc_version(),
        Some(v) => shown(v),
    };
    if !is_mm_mm(&version) {
        return Err(
            "Specified release format is not supported. Version format must be MM.mm.".into(),
        );
    }
    prestage_checks(body, lookups, version, for_sw_deploy, force)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Sc;

    impl Lookups for Sc {
        fn group(&self, reference: &str) -> Option<(ApplyType, u32)> {
            (reference == "Default" || reference == "1").then_some((ApplyType::Parallel, 3))
        }
        fn release_deployed(&self, release_id: &str) -> bool {
            release_id == "REL_1"
        }
        fn sc_version(&self) -> String {
            "25.09".into()
        }
        fn release_version(&self, release_id: &str) -> Option<String> {
            (release_id == "REL_1").then(|| "25.09".into())
        }
        fn version_states(&self, version: &str) -> Vec<String> {
            match version {
                "25.09" => vec!["deployed".into()],
                "26.03" => vec!["available".into()],
                _ => vec![],
            }
        }
        fn versions(&self) -> Vec<String> {
            vec!["25.09".into(), "26.03".into()]
        }
        fn deploy_in_progress(&self) -> bool {
            false
        }
    }

    fn check(body: Value) -> Result<CreateRequest, Refusal> {
        validate(body.as_object().unwrap(), &Sc)
    }

    #[test]
    fn the_originals_messages_in_its_order() {
        let cases = [
            (json!({}), "Body required"),
            (
                json!({"type": "sw-deploy", "force": "maybe"}),
                "Invalid value 'maybe' for force - must be True/False or 'true'/'false'",
            ),
            (
                json!({"type": "sw-deploy", "subcloud-apply-type": "sideways"}),
                "subcloud-apply-type invalid",
            ),
            (
                json!({"type": "sw-deploy", "cloud_name": "a", "subcloud_group": "Default"}),
                "cloud_name and subcloud_group are mutually exclusive",
            ),
            (
                json!({"type": "sw-deploy", "subcloud_group": "Default", "max-parallel-subclouds": 2}),
                "subcloud-apply-type and max-parallel-subclouds are not allowed when subcloud_group is provided",
            ),
            (
                json!({"type": "sw-deploy", "subcloud_group": "nope"}),
                "Invalid group_id",
            ),
            (
                json!({"type": "sw-deploy", "max-parallel-subclouds": "x"}),
                "max-parallel-subclouds invalid value. Value: x",
            ),
            (
                json!({"type": "sw-deploy", "max-parallel-subclouds": 5001}),
                "Invalid max-parallel-subclouds value: 5001. For sw-deploy strategy, the value must be between 1 and 5000.",
            ),
            (json!({"max-parallel-subclouds": 2}), "type required"),
            (json!({"type": "patch"}), "type invalid"),
            (
                json!({"type": "sw-deploy", "delete": 3}),
                "Invalid value '3' for delete - must be True/False or 'true'/'false'",
            ),
            (
                json!({"type": "sw-deploy", "sysadmin_password": "cGFzcw=="}),
                "The with_prestage option is required when using sysadmin_password",
            ),
            (
                json!({"type": "sw-deploy"}),
                "Release ID is required for strategy type: sw-deploy.",
            ),
            (
                json!({"type": "sw-deploy", "release_id": "REL_2"}),
                "Release ID: REL_2 not found or not deployed in the SystemController",
            ),
            (
                json!({"type": "sw-deploy", "rollback": true, "delete": true}),
                "Option delete cannot be used with any of the following options: rollback or cleanup.",
            ),
            (
                json!({"type": "sw-deploy", "release_id": "REL_1", "stop-on-failure": true}),
                "stop-on-failure invalid",
            ),
        ];
        for (body, message) in cases {
            assert_eq!(check(body.clone()).unwrap_err(), message, "{body}");
        }
    }

    #[test]
    fn prestage_refusals_in_the_originals_order_including_seed_003s_curl_cases() {
        let cases = [
            // Seed 003: missing mandatory parameter, unencoded password, invalid force.
            (
                json!({"type": "prestage"}),
                "subcloud sysadmin_password required",
            ),
            (
                json!({"type": "prestage", "sysadmin_password": "abc"}),
                "Failed to decode subcloud sysadmin_password, verify the password is base64 encoded",
            ),
            (
                json!({"type": "prestage", "sysadmin_password": "TGk2OW51eCo=", "force": "abc"}),
                "Invalid value 'abc' for force - must be True/False or 'true'/'false'",
            ),
            (
                json!({"type": "prestage", "max-parallel-subclouds": 251, "sysadmin_password": "TGk2OW51eCo="}),
                "Invalid max-parallel-subclouds value: 251. For prestage, the value must be between 1 and 250.",
            ),
            (
                json!({"type": "prestage", "release": "25.9", "sysadmin_password": "TGk2OW51eCo="}),
                "Specified release format is not supported. Version format must be MM.mm.",
            ),
            (
                json!({"type": "prestage", "release": "24.09", "sysadmin_password": "TGk2OW51eCo="}),
                "Error: invalid release version parameter. 24.09 is not a supported release version (25.09, 26.03)",
            ),
            (
                json!({"type": "prestage", "release": "22.12", "for_sw_deploy": "true", "sysadmin_password": "TGk2OW51eCo="}),
                "The requested software version is not supported, cannot prestage for software deploy.",
            ),
            (
                json!({"type": "prestage", "release": "26.03", "for_sw_deploy": "true", "sysadmin_password": "TGk2OW51eCo="}),
                "The requested software version not found or not deployed in the system controller, cannot prestage for software deploy.",
            ),
            (
                json!({"type": "prestage", "sysadmin_password": "TGk2OW51eCo=", "stop-on-failure": "yes"}),
                "stop-on-failure invalid",
            ),
        ];
        for (body, message) in cases {
            assert_eq!(check(body.clone()).unwrap_err(), message, "{body}");
        }
        // Seed 003's create: force and max-parallel as strings; `group` is not a field the
        // original reads, so it is ignored.
        let ok = check(json!({"type": "prestage", "sysadmin_password": "TGk2OW51eCo=", "force": "true", "max-parallel-subclouds": "50", "group": "Default"})).unwrap();
        assert_eq!(ok.max_parallel, 50);
        assert_eq!(
            ok.prestage,
            Some(PrestageAsk {
                sw_version: "25.09".into(),
                for_sw_deploy: false,
                force: true,
                sysadmin_password: "TGk2OW51eCo=".into(),
            })
        );
        let install = check(
            json!({"type": "prestage", "release": "26.03", "sysadmin_password": "TGk2OW51eCo="}),
        )
        .unwrap();
        assert_eq!(install.prestage.unwrap().sw_version, "26.03");
        let with = check(json!({"type": "sw-deploy", "release_id": "REL_1", "with_prestage": true, "sysadmin_password": "TGk2OW51eCo="})).unwrap();
        assert!(with.prestage.unwrap().for_sw_deploy);
    }

    #[test]
    fn a_single_subclouds_prestage_has_its_own_messages() {
        let check = |body: Value| validate_subcloud_prestage(body.as_object().unwrap(), &Sc);
        assert_eq!(
            check(json!({})).unwrap_err(),
            "sysadmin_password is required."
        );
        assert_eq!(
            check(json!({"sysadmin_password": "cGFzcw==", "force": "maybe"})).unwrap_err(),
            "Invalid value for force option: maybe"
        );
        assert_eq!(
            check(json!({"sysadmin_password": "cGFzcw==", "for_sw_deploy": 2})).unwrap_err(),
            "Invalid value for for_sw_deploy option: 2"
        );
        assert_eq!(
            check(json!({"sysadmin_password": "abc"})).unwrap_err(),
            "Failed to decode subcloud sysadmin_password, verify the password is base64 encoded"
        );
        let ok =
            check(json!({"sysadmin_password": "cGFzcw==", "force": "t", "for_sw_deploy": "T"}))
                .unwrap();
        assert!(ok.force && ok.for_sw_deploy);
        assert_eq!(ok.sw_version, "25.09");
    }

    #[test]
    fn accepted_requests_take_the_defaults_and_the_groups_settings() {
        let r = check(json!({"type": "sw-deploy", "release_id": "REL_1", "stop-on-failure": "true", "delete": "true"})).unwrap();
        assert_eq!(r.kind, DcStrategyType::SwDeploy);
        assert_eq!((r.apply_type, r.max_parallel), (None, DEFAULT_MAX_PARALLEL));
        assert!(r.stop_on_failure && r.delete);
        let serial = check(json!({"type": "sw-deploy", "release_id": "REL_1", "subcloud-apply-type": "serial", "max-parallel-subclouds": "7"})).unwrap();
        assert_eq!(
            (serial.apply_type, serial.max_parallel),
            (Some(ApplyType::Serial), 1)
        );
        let grouped =
            check(json!({"type": "sw-deploy", "release_id": "REL_1", "subcloud_group": "Default"}))
                .unwrap();
        assert_eq!(
            (grouped.apply_type, grouped.max_parallel),
            (Some(ApplyType::Parallel), 3)
        );
        let one =
            check(json!({"type": "sw-deploy", "release_id": "REL_1", "cloud_name": "subcloud1"}))
                .unwrap();
        assert_eq!(one.cloud_name.as_deref(), Some("subcloud1"));
    }
}
