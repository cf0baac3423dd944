"""Kubernetes scale-out, tested where no cluster runs: the Helm values and manifests load into the
Kubernetes client's own models, the executor switch builds jobs that accept k8s run config, and the
trainer's remote mode builds the pod that PipesK8sClient would create."""

from __future__ import annotations

import sys

import dagster as dg
import kubernetes
import pytest
import yaml
from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict
from dagster_k8s.pipes import build_pod_body

from reference_arch.common.executors import executor_from_env
from reference_arch.common.trainer.remote import HOME_MOUNT, K8sTrainerPod, pod_command, trainer_pod_spec
from reference_arch.common.settings import PROJECT_ROOT
from reference_arch.common.trainer.resource import TrainerResource

ENTRY_POINT = "reference_arch.pretrain.train_entry"  # any module name: the pod runs `python -m` it


def k8s_model(model_class, value: dict):
    """Kubernetes' own model of ``value`` (camelCase as in manifests); unknown keys raise."""
    return k8s_model_from_dict(model_class, k8s_snake_case_dict(model_class, value))


def load(path: str):
    return yaml.safe_load((PROJECT_ROOT / path).read_text())


@pytest.fixture(scope="module")
def values() -> dict:
    return load("deploy/k8s/values.yaml")


def test_helm_values_deploy_one_code_server_per_location(values):
    local = {e["python_module"]["location_name"]: e["python_module"]["module_name"]
             for e in load("workspace.yaml")["load_from"]}
    deployments = {d["name"]: d for d in values["dagster-user-deployments"]["deployments"]}
    assert set(deployments) == set(local)
    for name, deployment in deployments.items():
        assert deployment["dagsterApiGrpcArgs"] == ["--module-name", local[name]]
        env = {e["name"]: e["value"] for e in deployment["env"]}
        assert env["REFERENCE_ARCH_HOME"] == HOME_MOUNT and env["REFERENCE_ARCH_EXECUTOR"] == "k8s"
        assert {"name": "reference-arch-secrets"} in deployment["envSecrets"]
        for volume in deployment["volumes"]:
            k8s_model(kubernetes.client.V1Volume, volume)
        for mount in deployment["volumeMounts"]:
            k8s_model(kubernetes.client.V1VolumeMount, mount)
        assert deployment["includeConfigInLaunchedRuns"]["enabled"]


def test_helm_values_launch_runs_as_kubernetes_jobs_on_postgres(values):
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run_config = launcher["runK8sConfig"]
    # The same models dagster-k8s builds the run's pod from.
    k8s_model(kubernetes.client.V1Container, {"name": "run", **run_config["containerConfig"]})
    k8s_model(kubernetes.client.V1PodSpec, {"containers": [], **run_config["podSpecConfig"]})
    for volume in launcher["volumes"]:
        k8s_model(kubernetes.client.V1Volume, volume)
    claim = load("deploy/k8s/storage.yaml")
    pvc = k8s_model(kubernetes.client.V1PersistentVolumeClaim, claim)
    assert pvc.spec.access_modes == ["ReadWriteMany"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in launcher["volumes"]}
    assert claims == {pvc.metadata.name} == {K8sTrainerPod(image="x").home_claim}
    assert values["postgresql"]["enabled"] is False and values["global"]["postgresqlSecretName"]
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    pools = values["concurrency"]["pools"]
    assert pools["defaultLimit"] == 1 and pools["granularity"] == "op"


def test_the_pool_settings_render_to_a_valid_instance_config(values, tmp_path):
    """The chart writes ``concurrency.pools`` into dagster.yaml in snake case: Dagster accepts it."""
    from dagster._core.instance.config import dagster_instance_config

    pools = values["concurrency"]["pools"]
    rendered = {"concurrency": {"pools": {"default_limit": pools["defaultLimit"], "granularity": pools["granularity"]},
                                "runs": {"max_concurrent_runs": values["concurrency"]["runs"]["maxConcurrentRuns"]}}}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["pools"]["default_limit"] == 1


def test_executor_switch(monkeypatch):
    from dagster_k8s import k8s_job_executor

    monkeypatch.delenv("REFERENCE_ARCH_EXECUTOR", raising=False)
    assert executor_from_env() is None
    monkeypatch.setenv("REFERENCE_ARCH_EXECUTOR", "k8s")
    assert executor_from_env() is k8s_job_executor
    monkeypatch.setenv("REFERENCE_ARCH_EXECUTOR", "ray")
    with pytest.raises(ValueError, match="REFERENCE_ARCH_EXECUTOR"):
        executor_from_env()


def test_on_the_k8s_executor_asset_jobs_take_step_pod_config_and_question_jobs_stay_in_one_process(monkeypatch):
    """Materializations run each step as a Kubernetes Job; a question job runs in its run's pod (one
    process: a short answer pays no pod start-up per step)."""
    from reference_arch.common.questions import question_run_config
    from reference_arch.prompt.defs import prompt
    from reference_arch.prompt.defs import inference as prompt_inference
    from reference_arch.prompt.defs.inference import prompt_question_job

    monkeypatch.setenv("REFERENCE_ARCH_EXECUTOR", "k8s")
    materialize_prompt = dg.define_asset_job("materialize_prompt", selection=dg.AssetSelection.groups("prompt"))
    defs = dg.Definitions(assets=[prompt.question, prompt.prompt, prompt_inference.answer],
                          jobs=[prompt_question_job, materialize_prompt],
                          executor=executor_from_env(), resources={"llm": dg.ResourceDefinition.none_resource()})
    assert defs.resolve_job_def("prompt_question_job").executor_def.name == "in_process"
    job = defs.resolve_job_def("materialize_prompt")
    assert job.executor_def.name == "k8s"
    run_config = {
        **question_run_config("prompt", "What is a series?"),
        "execution": {"config": {
            "max_concurrent": 4,
            "step_k8s_config": {"container_config": {"resources": {"requests": {"cpu": "500m", "memory": "2Gi"}}}},
        }},
    }
    assert dg.validate_run_config(job, run_config)


def built_pod(trainer: TrainerResource, pod: K8sTrainerPod) -> kubernetes.client.V1Pod:
    """The pod PipesK8sClient.run would create (its own builder), Pipes bootstrap env included."""
    return build_pod_body(
        pod_name="dagster-train", image=None, command=None,
        env_vars={"DAGSTER_PIPES_CONTEXT": "ctx", "DAGSTER_PIPES_MESSAGES": "msgs"},
        base_pod_meta=None, base_pod_spec=trainer_pod_spec(trainer, ENTRY_POINT, pod),
    )


def test_remote_trainer_pod_runs_the_entry_point_on_one_gpu():
    trainer = TrainerResource(device="auto")
    pod = built_pod(trainer, K8sTrainerPod(image="registry.example.com/reference-arch:cuda"))
    container = pod.spec.containers[0]
    assert container.command == ["python", "-m", ENTRY_POINT]
    assert container.image == "registry.example.com/reference-arch:cuda"
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert pod.spec.node_selector == {"reference-arch/pool": "gpu"}
    assert pod.spec.tolerations[0].key == "nvidia.com/gpu" and pod.spec.restart_policy == "Never"
    mounts = {m.mount_path: m.name for m in container.volume_mounts}
    assert mounts[HOME_MOUNT] == "home" and mounts["/dev/shm"] == "dshm"
    assert container.env_from[0].secret_ref.name == "reference-arch-secrets"
    assert {e.name for e in container.env} >= {"DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"}


def test_remote_trainer_pod_runs_torchrun_across_the_pods_gpus():
    trainer = TrainerResource(launcher="torchrun", nproc_per_node=4)
    pod = built_pod(trainer, K8sTrainerPod(image="img"))
    container = pod.spec.containers[0]
    assert container.command[0] == "torchrun"
    assert container.command[1:] == ["--standalone", "--nproc_per_node=4", "-m", ENTRY_POINT]
    assert container.resources.limits["nvidia.com/gpu"] == "4"


def test_remote_trainer_pod_on_cpu_asks_for_no_gpu_node():
    trainer = TrainerResource(device="cpu")
    pod = built_pod(trainer, K8sTrainerPod(image="img", gpus=0))
    assert "nvidia.com/gpu" not in pod.spec.containers[0].resources.limits
    assert not pod.spec.node_selector and not pod.spec.tolerations


def test_pod_command_replaces_this_machines_interpreter():
    assert pod_command(TrainerResource(), "m")[0] == "python"
    assert sys.executable not in pod_command(TrainerResource(launcher="torchrun", nproc_per_node=2), "m")


def test_remote_trainer_runs_the_entry_point_in_a_pod_and_reports_back(tmp_path, instance):
    """The whole remote mode through PipesK8sClient, against a local Kubernetes API stand-in that
    runs the pod's container here: pod spec, command, Pipes bootstrap, secrets, the shared home,
    messages read back from the pod's log, and the pod deleted afterwards."""
    from dagster_k8s import PipesK8sClient

    from reference_arch.common.trainer.remote import run_on_kubernetes
    from reference_arch_tests.production.fake_kubernetes import FakeKubernetes

    pod_home = tmp_path / "shared-home"
    pod_home.mkdir()
    received: list[dict] = []
    with FakeKubernetes(tmp_path, secrets={"reference-arch-secrets": {"OPENAI_API_KEY": "sk-test"}},
                        mounts={HOME_MOUNT: str(pod_home)}) as k8s:

        @dg.asset
        def trained_model(context) -> dg.MaterializeResult:
            client = PipesK8sClient(kubeconfig_file=str(k8s.kubeconfig), poll_interval=0.1)
            run = run_on_kubernetes(context, TrainerResource(), {"run_name": "r1"}, K8sTrainerPod(image="img:cuda"),
                                    on_message=received.append,
                                    entry_point="reference_arch_tests.production.pipes_trainer_stub", client=client)
            return dg.MaterializeResult(metadata={"summary": run.summary, **run.metadata()})

        result = dg.materialize([trained_model], instance=instance)

    assert result.success
    (materialization,) = result.asset_materializations_for_node("trained_model")
    summary = materialization.metadata["summary"].value
    assert materialization.metadata["train/global_step"].value == 1  # what the UI plots
    assert summary["device"] == "cuda" and summary["precision"] == "auto" and summary["global_step"] == 1
    assert summary["home"] == str(pod_home) and summary["secret_present"]
    assert [m["event"] for m in received] == ["start", "metrics", "checkpoint", "done"]
    assert (pod_home / "runs" / "r1" / "checkpoint-1" / "checkpoint.json").is_file()
    (created,) = k8s.created
    container = created["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "reference_arch_tests.production.pipes_trainer_stub"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert k8s.deleted == [created["metadata"]["name"]]
    logs = [e.message for e in instance.all_logs(result.run_id)]
    assert any("stub trainer on cuda" in message for message in logs)


@pytest.mark.parametrize("launcher", ["subprocess", "torchrun", "k8s"])
def test_the_launcher_setting_moves_training_with_no_asset_change(launcher, tmp_path, instance, monkeypatch):
    """REFERENCE_ARCH_TRAINER_LAUNCHER picks where one unchanged asset's training runs: a process here,
    torchrun here, or a pod (PipesK8sClient from ~/.kube/config, here the local Kubernetes stand-in); the
    messages and the checkpoint come back the same way from each."""
    from reference_arch.common.resources import trainer_resource
    from reference_arch_tests.production.fake_kubernetes import FakeKubernetes

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("REFERENCE_ARCH_TRAINER_LAUNCHER", launcher)
    monkeypatch.setenv("REFERENCE_ARCH_HOME", str(home))
    if launcher == "k8s":
        monkeypatch.setenv("REFERENCE_ARCH_TRAINER_IMAGE", "reference-arch:cuda")
        monkeypatch.setenv("REFERENCE_ARCH_TRAINER_PROCESSES", "1")
    received: list[dict] = []

    @dg.asset
    def trained_model(context, trainer: TrainerResource) -> dg.MaterializeResult:  # the same for every launcher
        run = trainer.run(context, {"run_name": "r1"}, on_message=received.append,
                          entry_point="reference_arch_tests.production.pipes_trainer_stub")
        return dg.MaterializeResult(metadata={"device": run.summary["device"]})

    with FakeKubernetes(tmp_path, mounts={HOME_MOUNT: str(home)}) as k8s:
        # what $KUBECONFIG or ~/.kube/config would give (the client reads $KUBECONFIG once, on import)
        monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(k8s.kubeconfig))
        result = dg.materialize([trained_model], instance=instance, resources={"trainer": trainer_resource()})
    assert result.success
    assert [m["event"] for m in received] == ["start", "metrics", "checkpoint", "done"]
    assert (home / "runs" / "r1" / "checkpoint-1" / "checkpoint.json").is_file()
    assert len(k8s.created) == (launcher == "k8s")
    if launcher == "k8s":
        container = k8s.created[0]["spec"]["containers"][0]
        assert container["image"] == "reference-arch:cuda" and container["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_the_k8s_launcher_without_an_image_fails_in_one_line(monkeypatch, instance):
    monkeypatch.setenv("REFERENCE_ARCH_TRAINER_LAUNCHER", "k8s")
    from reference_arch.common.resources import trainer_resource

    @dg.asset
    def trained_model(context, trainer: TrainerResource) -> None:
        trainer.run(context, {"run_name": "r1"})

    result = dg.materialize([trained_model], instance=instance, resources={"trainer": trainer_resource()},
                            raise_on_error=False)
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_failure_data.error.message.strip().endswith(
        "the k8s trainer launcher needs its pod's image: set REFERENCE_ARCH_TRAINER_IMAGE (or the trainer "
        "resource's pod.image)")


def test_the_helm_chart_version_is_pinned_to_the_dagster_the_image_installs():
    """The chart's version is dagster's: an unpinned `helm install` takes the newest chart, whose webserver
    and daemon would not match the code servers' dagster."""
    import dagster

    text = (PROJECT_ROOT / "deploy/k8s/values.yaml").read_text()
    assert f"helm upgrade --install dagster dagster/dagster --version {dagster.__version__} " in text
    assert f"version {dagster.__version__}:" in text
