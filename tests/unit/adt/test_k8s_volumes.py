"""Volumes (inline, PersistentVolume + claim), ConfigMaps, and how containers mount them."""

from __future__ import annotations

import pytest
from k8s_helpers import NODES, Result, run, schema_errors

DOCKER = "tosca.nodes.MiCADO.Container.Application.Docker"
VOLUME = "tosca.nodes.MiCADO.Container.Volume"
LABELS = {"app.kubernetes.io/name": "nfs", "app.kubernetes.io/instance": "app1",
          "app.kubernetes.io/managed-by": "micado"}


def mounted(volume: str, requirement: str = "- volume: data") -> Result:
    return run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          requirements:
            {requirement}
        data:
          {volume}
    """)


def test_empty_dir_is_inlined() -> None:
    result = mounted(f"type: {VOLUME}.EmptyDir")
    assert result.kinds() == [("Deployment", "web")]
    pod = result.pod_spec()
    assert pod["volumes"] == [{"name": "data", "emptyDir": {}}]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "data", "mountPath": "/mnt/volumes/data"}]
    assert schema_errors(result.manifests) == []


def test_host_path_is_inlined_and_its_path_is_the_default_mount_path() -> None:
    result = mounted(f"{{type: {VOLUME}.HostPath, properties: {{path: /var/log}}}}")
    pod = result.pod_spec()
    assert pod["volumes"] == [{"name": "data", "hostPath": {"path": "/var/log"}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "data", "mountPath": "/var/log"}]


def test_nfs_makes_a_persistent_volume_and_a_claim() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          requirements:
            - volume:
                node: nfs
                relationship:
                  type: tosca.relationships.AttachesTo
                  properties: {{location: /srv/data}}
        nfs:
          type: {VOLUME}.NFS
          properties: {{path: /exports/data, server: 10.0.0.5, size: 5Gi}}
    """)
    assert result.errors == []
    assert result.kinds() == [("PersistentVolume", "nfs"), ("PersistentVolumeClaim", "nfs"),
                              ("Deployment", "web")]
    pv = result.find("PersistentVolume")
    assert pv == {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "nfs", "labels": LABELS},
        "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteMany"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                 "nfs": {"path": "/exports/data", "server": "10.0.0.5"}},
    }
    pvc = result.find("PersistentVolumeClaim")
    assert pvc == {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "nfs", "namespace": "default", "labels": LABELS},
        "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "",
                 "resources": {"requests": {"storage": "5Gi"}},
                 "selector": {"matchLabels": LABELS}},
    }
    pod = result.pod_spec()
    assert pod["volumes"] == [{"name": "nfs", "persistentVolumeClaim": {"claimName": "nfs"}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "nfs", "mountPath": "/srv/data"}]
    assert schema_errors(result.manifests) == []


def test_default_size_and_size_units() -> None:
    result = run(f"""
        a: {{type: {VOLUME}.NFS, properties: {{path: /a, server: s}}}}
        b: {{type: {VOLUME}.NFS, properties: {{path: /b, server: s, size: 10 GB}}}}
        c: {{type: {VOLUME}.NFS, properties: {{path: /c, server: s, size: 2 GiB}}}}
    """)
    sizes = [m["spec"]["capacity"]["storage"] for m in result.manifests
             if m["kind"] == "PersistentVolume"]
    assert sizes == ["1Gi", "10G", "2Gi"]


def test_bad_size_is_an_error() -> None:
    result = run(f"""
        a: {{type: {VOLUME}.NFS, properties: {{path: /a, server: s, size: lots}}}}
    """)
    assert result.error_paths() == [f"{NODES}.a.properties.size"]


def test_unused_persistent_volumes_are_still_made() -> None:
    result = run(f"""
        gluster:
          type: {VOLUME}.GlusterFS
          properties: {{path: vol1, endpoints: gluster-cluster}}
    """)
    assert result.kinds() == [("PersistentVolume", "gluster"),
                              ("PersistentVolumeClaim", "gluster")]
    assert result.find("PersistentVolume")["spec"]["glusterfs"] == {
        "path": "vol1", "endpoints": "gluster-cluster"}  # unset readOnly is dropped
    assert schema_errors(result.manifests) == []


def test_unused_inline_volume_is_a_warning() -> None:
    result = run(f"scratch: {{type: {VOLUME}.EmptyDir}}")
    assert result.manifests == []
    assert [w.split(":")[0] for w in result.warnings] == [f"{NODES}.scratch"]


def test_local_volume_and_custom_spec() -> None:
    result = run(f"""
        local:
          type: {VOLUME}.Local
          properties: {{path: /mnt/disk, node: worker-1}}
        custom:
          type: {VOLUME}
          interfaces:
            Kubernetes:
              create:
                inputs:
                  spec:
                    accessModes: [ReadWriteOnce]
                    csi: {{driver: example.csi, volumeHandle: vol-1}}
    """)
    local = result.find("PersistentVolume", "local")["spec"]
    assert local["local"] == {"path": "/mnt/disk"}
    assert local["volumeMode"] == "Filesystem"
    assert result.find("PersistentVolumeClaim", "local")["spec"]["volumeMode"] == "Filesystem"
    custom = result.find("PersistentVolume", "custom")["spec"]
    assert custom["accessModes"] == ["ReadWriteOnce"]
    assert result.find("PersistentVolumeClaim", "custom")["spec"]["accessModes"] == [
        "ReadWriteOnce"]
    assert schema_errors(result.manifests) == []


def test_name_property_overrides_the_object_name() -> None:
    result = mounted(f"{{type: {VOLUME}.NFS, properties: {{name: shared, path: /x, server: s}}}}")
    assert result.kinds() == [("PersistentVolume", "shared"), ("PersistentVolumeClaim", "shared"),
                              ("Deployment", "web")]
    assert result.pod_spec()["volumes"] == [
        {"name": "shared", "persistentVolumeClaim": {"claimName": "shared"}}]


@pytest.mark.parametrize(("relationship", "mount"), [
    ("{location: /data}", {"mountPath": "/data"}),
    ("{location: /data, subPath: logs}", {"mountPath": "/data", "subPath": "logs"}),
    ("{location: /data, sub_path: logs}", {"mountPath": "/data", "subPath": "logs"}),
    ("{location: /data, readOnly: true}", {"mountPath": "/data", "readOnly": True}),
])
def test_mount_options_from_the_relationship(relationship: str, mount: dict) -> None:
    result = mounted(f"type: {VOLUME}.EmptyDir", f"""- volume:
                node: data
                relationship:
                  type: tosca.relationships.AttachesTo
                  properties: {relationship}""")
    assert result.container()["volumeMounts"] == [{"name": "data", **mount}]


def test_requirement_to_a_non_volume_is_an_error() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          requirements:
            - volume: db
        db:
          type: {DOCKER}
          properties: {{image: postgres}}
    """)
    assert f"{NODES}.web.requirements[0].volume" in result.error_paths()


def test_volume_in_another_namespace_is_an_error() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          requirements:
            - volume: nfs
        nfs:
          type: {VOLUME}.NFS
          properties: {{path: /x, server: s}}
          interfaces:
            Kubernetes:
              create:
                inputs: {{metadata: {{namespace: storage}}}}
    """)
    assert result.error_paths() == [f"{NODES}.web.requirements[0].volume"]
    assert result.find("PersistentVolumeClaim")["metadata"]["namespace"] == "storage"


@pytest.mark.parametrize("config_type", ["ConfigMap", "Kubernetes"])
def test_config_map(config_type: str) -> None:
    result = run(f"""
        settings:
          type: tosca.nodes.MiCADO.Container.Config.{config_type}
          properties:
            data: {{nginx.conf: "server {{}}", workers: 4}}
    """)
    assert result.manifests == [{
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default", "labels": {
            "app.kubernetes.io/name": "settings", "app.kubernetes.io/instance": "app1",
            "app.kubernetes.io/managed-by": "micado"}},
        "data": {"nginx.conf": "server {}", "workers": "4"},
    }]  # binaryData was not set and is dropped
    assert schema_errors(result.manifests) == []


def test_config_map_is_mounted_as_a_volume() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          requirements:
            - volume:
                node: settings
                relationship:
                  type: tosca.relationships.AttachesTo
                  properties: {{location: /etc/nginx/conf.d}}
        settings:
          type: tosca.nodes.MiCADO.Container.Config.ConfigMap
          properties:
            binaryData: {{logo.png: aGVsbG8=}}
    """)
    assert result.kinds() == [("ConfigMap", "settings"), ("Deployment", "web")]
    assert result.find("ConfigMap")["binaryData"] == {"logo.png": "aGVsbG8="}
    pod = result.pod_spec()
    assert pod["volumes"] == [{"name": "settings", "configMap": {"name": "settings"}}]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "settings", "mountPath": "/etc/nginx/conf.d"}]
    assert schema_errors(result.manifests) == []


def test_config_path_property_is_the_default_mount_path() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          requirements:
            - volume: settings
        settings:
          type: tosca.nodes.MiCADO.Container.Config.ConfigMap
          properties: {{path: /etc/app, data: {{a: b}}}}
    """)
    assert result.container()["volumeMounts"] == [{"name": "settings", "mountPath": "/etc/app"}]


def test_one_volume_shared_by_sidecars_is_listed_once() -> None:
    result = run(f"""
        web:
          type: {DOCKER}
          properties: {{image: nginx}}
          requirements:
            - volume: logs
            - container: shipper
        shipper:
          type: {DOCKER}
          properties: {{image: fluent-bit}}
          requirements:
            - volume: logs
        logs:
          type: {VOLUME}.EmptyDir
    """)
    pod = result.pod_spec()
    assert pod["volumes"] == [{"name": "logs", "emptyDir": {}}]
    assert all(c["volumeMounts"] == [{"name": "logs", "mountPath": "/mnt/volumes/logs"}]
               for c in pod["containers"])
