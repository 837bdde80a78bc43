//! Deployment files, checked where no cluster or Docker engine runs: the
//! Kubernetes manifests and the compose file are parsed and their
//! cross-references checked (selectors match pods, probes hit the real
//! health routes, services exist, grace periods cover the worker's).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_yaml::Value;

fn infrastructure() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infrastructure")
}

fn get<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |v, key| &v[key])
}

fn text(value: &Value, path: &str) -> String {
    get(value, path).as_str().unwrap_or_else(|| panic!("{path} missing in {value:?}")).to_string()
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .map(|m| m.iter().map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().unwrap().to_string())).collect())
        .unwrap_or_default()
}

fn manifests() -> Vec<Value> {
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(infrastructure().join("kubernetes")).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        for document in serde_yaml::Deserializer::from_str(&source) {
            let value = Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if !value.is_null() {
                docs.push(value);
            }
        }
    }
    docs
}

use serde::Deserialize;

#[test]
fn kubernetes_manifests_are_consistent() {
    let docs = manifests();
    let of_kind = |kind: &str| docs.iter().filter(|d| d["kind"] == kind).collect::<Vec<_>>();
    for doc in &docs {
        for field in ["apiVersion", "kind", "metadata.name"] {
            assert!(get(doc, field).is_string(), "{field} missing: {doc:?}");
        }
        if doc["kind"] != "Namespace" {
            assert_eq!(text(doc, "metadata.namespace"), "peyk", "{doc:?}");
        }
    }
    let config_maps: BTreeSet<String> = of_kind("ConfigMap").iter().map(|d| text(d, "metadata.name")).collect();
    let secrets: BTreeSet<String> = of_kind("Secret").iter().map(|d| text(d, "metadata.name")).collect();
    let grace: u64 = of_kind("ConfigMap")[0]["data"]["PEYK_SHUTDOWN_GRACE_SECONDS"].as_str().unwrap().parse().unwrap();

    let deployments = of_kind("Deployment");
    let mut pod_labels = BTreeMap::new();
    for deployment in &deployments {
        let name = text(deployment, "metadata.name");
        let selector = labels(get(deployment, "spec.selector.matchLabels"));
        let template = labels(get(deployment, "spec.template.metadata.labels"));
        assert!(selector.iter().all(|(k, v)| template.get(k) == Some(v)), "{name}: selector does not match its pods");
        let containers = get(deployment, "spec.template.spec.containers").as_sequence().unwrap();
        for container in containers {
            assert!(container["image"].is_string(), "{name}: image");
            assert!(get(container, "resources.requests").is_mapping(), "{name}: resource requests");
            assert!(get(container, "resources.limits.memory").is_string(), "{name}: memory limit");
            for source in container["envFrom"].as_sequence().unwrap() {
                if let Some(map) = source["configMapRef"]["name"].as_str() {
                    assert!(config_maps.contains(map), "{name}: unknown ConfigMap {map}");
                }
                if let Some(secret) = source["secretRef"]["name"].as_str() {
                    assert!(secrets.contains(secret), "{name}: unknown Secret {secret}");
                }
            }
        }
        let command: Vec<&str> = containers[0]["command"].as_sequence().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        match command[0] {
            "peyk-api" => {
                assert_eq!(text(&containers[0], "readinessProbe.httpGet.path"), "/readyz");
                assert_eq!(text(&containers[0], "livenessProbe.httpGet.path"), "/healthz");
            }
            "peyk-worker" => {
                assert_eq!(text(&containers[0], "livenessProbe.httpGet.path"), "/healthz");
                let pod_grace = get(deployment, "spec.template.spec.terminationGracePeriodSeconds").as_u64().unwrap();
                assert!(pod_grace > grace, "{name}: the pod's grace period must cover PEYK_SHUTDOWN_GRACE_SECONDS");
                let env: Vec<&str> = containers[0]["env"].as_sequence().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
                assert!(env.contains(&"PEYK_QUEUES"), "{name}: a worker Deployment serves a named queue group");
            }
            other => panic!("{name}: unexpected command {other}"),
        }
        pod_labels.insert(name, template);
    }
    let matches_some_pod =
        |selector: &BTreeMap<String, String>| pod_labels.values().any(|pod| selector.iter().all(|(k, v)| pod.get(k) == Some(v)));
    for pdb in of_kind("PodDisruptionBudget") {
        assert!(matches_some_pod(&labels(get(pdb, "spec.selector.matchLabels"))), "PDB {:?} selects no pods", pdb["metadata"]["name"]);
    }
    for service in of_kind("Service") {
        assert!(matches_some_pod(&labels(get(service, "spec.selector"))), "Service selects no pods");
    }
    for scaler in of_kind("ScaledObject") {
        let target = text(scaler, "spec.scaleTargetRef.name");
        assert!(pod_labels.contains_key(&target), "ScaledObject targets unknown Deployment {target}");
        let query = text(&scaler["spec"]["triggers"][0], "metadata.query");
        assert!(query.contains("peyk_queue_depth"), "scaling follows the queue depth");
    }
    assert!(deployments.len() >= 2 && !of_kind("ScaledObject").is_empty() && !of_kind("PodDisruptionBudget").is_empty());

    // A GPU worker Deployment: asks for a GPU, lands on GPU nodes, serves transcription.
    let gpu = deployments
        .iter()
        .find(|d| get(d, "spec.template.spec.containers")[0]["resources"]["limits"]["nvidia.com/gpu"].as_u64() == Some(1))
        .expect("a Deployment requesting nvidia.com/gpu");
    assert!(get(gpu, "spec.template.spec.nodeSelector").is_mapping(), "GPU pods need a node selector");
    let env = get(gpu, "spec.template.spec.containers")[0]["env"].as_sequence().unwrap().clone();
    assert!(env.iter().any(|e| e["name"] == "PEYK_QUEUES" && e["value"] == "transcription"));
    let claims: BTreeSet<String> = of_kind("PersistentVolumeClaim").iter().map(|d| text(d, "metadata.name")).collect();
    for volume in get(gpu, "spec.template.spec.volumes").as_sequence().unwrap() {
        assert!(claims.contains(&text(volume, "persistentVolumeClaim.claimName")), "GPU worker mounts an unknown claim");
    }
}

#[test]
fn compose_file_is_consistent() {
    let source = std::fs::read_to_string(infrastructure().join("docker-compose.yml")).unwrap();
    let mut compose: Value = serde_yaml::from_str(&source).unwrap();
    compose.apply_merge().unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let names: BTreeSet<String> = services.keys().map(|k| k.as_str().unwrap().to_string()).collect();
    for required in ["redis", "postgres", "migrate", "api", "worker", "prometheus", "alertmanager", "grafana", "node-exporter", "mail-sink"]
    {
        assert!(names.contains(required), "service {required} missing");
    }
    let volumes: BTreeSet<String> = compose["volumes"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_string()).collect();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        let mut service = service.clone();
        service.apply_merge().unwrap();
        assert!(service["image"].is_string(), "{name}: image");
        let restart = service["restart"].as_str().unwrap_or_else(|| panic!("{name}: restart policy"));
        assert!(restart == "unless-stopped" || ["migrate", "models"].contains(&name), "{name}: restart {restart}");
        if let Some(depends) = service["depends_on"].as_mapping() {
            for dependency in depends.keys() {
                assert!(names.contains(dependency.as_str().unwrap()), "{name} depends on unknown {dependency:?}");
            }
        }
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            if !source.starts_with('.') && !source.starts_with('/') {
                assert!(volumes.contains(source), "{name}: undeclared volume {source}");
            } else if source.starts_with("..") {
                assert!(infrastructure().join(source).exists(), "{name}: mounts missing {source}");
            }
        }
    }
    let gpu = &services["worker-gpu"];
    assert_eq!(gpu["profiles"][0], "gpu");
    assert_eq!(gpu["deploy"]["resources"]["reservations"]["devices"][0]["driver"], "nvidia");
    assert!(gpu["build"]["dockerfile"].as_str().unwrap().ends_with("Dockerfile.cuda"));
    assert!(infrastructure().join("docker/Dockerfile.cuda").exists());
    for name in ["postgres", "redis", "api", "worker", "worker-gpu"] {
        assert!(services[name]["healthcheck"]["test"].is_sequence(), "{name}: health check");
    }
}
