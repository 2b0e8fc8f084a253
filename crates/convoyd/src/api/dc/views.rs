//! Stored subclouds and groups as dcmanager shows them.

use convoy_api::dc::{EndpointSyncStatus, SiteAudit, Subcloud, SubcloudGroup};
use convoy_core::subcloud::{Availability, overall_sync};
use convoy_store::subclouds::{GroupRecord, SubcloudRecord};
use jiff::Timestamp;

/// How dcmanager writes times it reads from its database: Python's `str(datetime)`, with
/// microseconds left out when they are zero.
pub fn time(t: Timestamp) -> String {
    if t.subsec_nanosecond() == 0 {
        t.strftime("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        t.strftime("%Y-%m-%d %H:%M:%S.%6f").to_string()
    }
}

/// One value of the bootstrap values given at add time, if it is there.
fn bootstrap_value(values: Option<&serde_json::Value>, key: &str) -> Option<String> {
    match values?.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

pub fn subcloud(record: SubcloudRecord) -> Subcloud {
    let values: Option<serde_json::Value> = record
        .bootstrap_values
        .as_deref()
        .and_then(|yaml| serde_norway::from_str(yaml).ok());
    let values = values.as_ref();
    let audit: Option<SiteAudit> = record
        .audit
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
        // The users' digests are for the sync, not for readers.
        .map(|audit: SiteAudit| SiteAudit {
            users: vec![],
            ..audit
        });
    Subcloud {
        id: record.id,
        region_name_key: record.name.clone(),
        name: record.name,
        description: record.description,
        location: record.location,
        software_version: record.software_version,
        management_state: record.management.as_str().into(),
        availability_status: record.availability.as_str().into(),
        deploy_status: record.deploy_status,
        backup_status: None,
        backup_datetime: None,
        error_description: record
            .error_description
            .unwrap_or_else(|| "No errors present".into()),
        management_subnet: bootstrap_value(values, "management_subnet"),
        management_start_ip: bootstrap_value(values, "management_start_address"),
        management_end_ip: bootstrap_value(values, "management_end_address"),
        management_gateway_ip: bootstrap_value(values, "management_gateway_address"),
        openstack_installed: false,
        prestage_status: record.prestage_status,
        prestage_versions: record.prestage_versions,
        prestage_software_version: None,
        systemcontroller_gateway_ip: bootstrap_value(values, "systemcontroller_gateway_address"),
        data_install: None,
        data_upgrade: None,
        created_at: time(record.created_at),
        updated_at: record.updated_at.map(time),
        group_id: record.group_id,
        peer_group_id: None,
        rehome_data: None,
        bootstrap_address: record.address,
        audit,
        endpoint_sync_status: record
            .endpoints
            .into_iter()
            .map(|(endpoint_type, status)| EndpointSyncStatus {
                endpoint_type,
                sync_status: status.as_str().into(),
            })
            .collect(),
        sync_status: None,
        oam_floating_ip: None,
        deploy_config_sync_status: None,
        region_name: None,
        info_message: None,
    }
}

/// As listed: with the overall sync status.
pub fn listed(record: SubcloudRecord) -> Subcloud {
    let statuses: Vec<_> = record.endpoints.iter().map(|(_, s)| *s).collect();
    let mut shown = subcloud(record);
    shown.sync_status = Some(overall_sync(&statuses).as_str().into());
    shown
}

/// As `/detail` shows it: the keys the dcmanager CLI requires for `--detail`.
pub fn detailed(record: SubcloudRecord) -> Subcloud {
    let online = record.availability == Availability::Online;
    let host = url_host(&record.address);
    let mut shown = subcloud(record);
    shown.oam_floating_ip = Some(if online { host } else { "unavailable".into() });
    shown.deploy_config_sync_status = Some("unknown".into());
    shown.region_name = Some(shown.name.clone());
    shown
}

/// The host of a URL (the subcloud's OAM address, for Convoy).
fn url_host(address: &str) -> String {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host.to_string(),
        _ => authority.to_string(),
    }
    .trim_start_matches('[')
    .trim_end_matches(']')
    .to_string()
}

pub fn group(record: GroupRecord, with_count: bool) -> SubcloudGroup {
    SubcloudGroup {
        id: record.id,
        name: record.name,
        description: record.description,
        update_apply_type: record.update_apply_type.as_str().into(),
        max_parallel_subclouds: record.max_parallel_subclouds,
        created_at: record.created_at.map(time),
        updated_at: record.updated_at.map(time),
        subcloud_count: with_count.then_some(record.subcloud_count),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_pythons_str_of_a_datetime() {
        let t: Timestamp = "2021-06-07T21:05:16.224Z".parse().unwrap();
        assert_eq!(time(t), "2021-06-07 21:05:16.224000");
        let t: Timestamp = "2021-06-07T21:05:16Z".parse().unwrap();
        assert_eq!(time(t), "2021-06-07 21:05:16");
    }

    #[test]
    fn the_oam_address_is_the_urls_host() {
        assert_eq!(url_host("https://10.0.0.1:7400"), "10.0.0.1");
        assert_eq!(url_host("http://[fd01::2]:7400/"), "fd01::2");
        assert_eq!(url_host("https://sc1.example"), "sc1.example");
    }
}
