"""Fast checks of the sam local helpers: sam-env.json's rewriting, the relay, the stand-in's recipe."""

from __future__ import annotations

import dataclasses
import socket
import threading
from pathlib import Path

import pytest

from keaplink_dev.local import lambda_image, relay
from keaplink_dev.local.sam_local import SamEnvWriter, container_environments

DEPLOYED = {
    "AdminFn": {
        "CONNECTION_TABLE": "keaplink-local-ConnectionTable-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "KEAP_AUTHORIZE_URL": "http://127.0.0.1:8765/app/oauth/authorize",
        "KEAP_TOKEN_URL": "http://127.0.0.1:8765/token",
        "KEAP_API_URL": "https://api.infusionsoft.com/crm/rest",
        "PUBLIC_BASE_URL": "http://127.0.0.1:4566/_aws/execute-api/abc/local",
        "BUTTON_TAG": "buttonpushed",
    },
    "ActionsFn": {"DLQ_URL": "http://localhost:4566/000000000000/dlq", "KEAP_MAX_RPS": "11.5"},
}


def test_container_environments_move_loopback_urls_to_the_docker_host() -> None:
    envs, ports = container_environments(DEPLOYED, "172.17.0.1")
    admin = envs["AdminFn"]
    assert admin["AWS_ENDPOINT_URL"] == "http://172.17.0.1:4566"
    assert admin["KEAP_TOKEN_URL"] == "http://172.17.0.1:8765/token"
    assert admin["KEAP_AUTHORIZE_URL"] == "http://127.0.0.1:8765/app/oauth/authorize"  # opened by the browser
    assert admin["KEAP_API_URL"] == "https://api.infusionsoft.com/crm/rest"  # not local: unchanged
    assert admin["PUBLIC_BASE_URL"] == ""  # derived from the request under sam local
    assert admin["CONNECTION_TABLE"] == "keaplink-local-ConnectionTable-1" and admin["BUTTON_TAG"] == "buttonpushed"
    assert envs["ActionsFn"] == {"DLQ_URL": "http://172.17.0.1:4566/000000000000/dlq", "KEAP_MAX_RPS": "11.5"}
    assert ports == {4566, 8765}
    assert DEPLOYED["AdminFn"]["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"  # input untouched


def test_container_host_honours_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEAPLINK_DOCKER_HOST", "host.docker.internal")
    assert relay.container_host() == ("host.docker.internal", False)
    monkeypatch.delenv("KEAPLINK_DOCKER_HOST")
    assert relay.interface_ipv4("lo") == "127.0.0.1"
    assert relay.interface_ipv4("no-such-if0") is None


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    return server, int(server.getsockname()[1])


def test_relay_forwards_to_the_same_port_on_loopback() -> None:
    server, port = _echo_server()
    payload = b"x" * 200_000  # more than one read
    with server, relay.TcpRelay("127.0.0.2", [port]):
        for _ in range(2):  # connections one after another
            with socket.create_connection(("127.0.0.2", port), timeout=5) as conn:
                conn.sendall(payload)
                conn.shutdown(socket.SHUT_WR)
                received = b""
                while chunk := conn.recv(65536):
                    received += chunk
            assert received == payload.upper()
    with pytest.raises(OSError):  # stopped: nothing listens any more
        socket.create_connection(("127.0.0.2", port), timeout=2)


def test_sam_env_writer_waits_for_docker_then_writes_and_cleans_up(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import keaplink_dev.local.sam_local as sam_local

    host: list[str | None] = [None]
    monkeypatch.setattr(sam_local, "container_host", lambda: (host[0], False))
    monkeypatch.setattr(sam_local, "deployed_environments", lambda endpoint, stack: DEPLOYED)
    lines: list[str] = []
    path = tmp_path / "sam-env.json"
    with SamEnvWriter("http://127.0.0.1:4566", "stack", lines.append, path) as writer:
        assert writer.poll() is False and not path.exists()  # no Docker bridge yet
        host[0] = "10.0.0.1"
        assert writer.poll() is True
        assert '"AWS_ENDPOINT_URL": "http://10.0.0.1:4566"' in path.read_text()
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not path.exists()
    assert any("sam-env.json" in line and "10.0.0.1" in line for line in lines)


def _recipe(**changes: object) -> lambda_image.Recipe:
    base = lambda_image.Recipe(
        python_version="3.13", python_build="3.13.0 (main)", python_prefix="/opt/py", debian_suite="bookworm",
        debian_packages=("libssl3",), runtime_packages=lambda_image.RUNTIME_PACKAGES, bootstrap_sh="sh",
        bootstrap_py="py", env=(("A", "1"),),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_standin_tag_changes_with_its_recipe() -> None:
    tag = _recipe().tag
    assert tag.startswith("keaplink/lambda-python:3.13-") and tag == _recipe().tag
    for change in ({"python_build": "3.13.1 (main)"}, {"debian_packages": ("libssl3", "zlib1g")},
                   {"runtime_packages": ("awslambdaric==9",)}, {"bootstrap_py": "py2"}, {"debian_suite": "trixie"}):
        assert _recipe(**change).tag != tag, change


def test_standin_needs_a_self_contained_python(tmp_path: Path) -> None:
    with pytest.raises(lambda_image.ImageError, match="self-contained"):
        lambda_image.self_contained_prefix(Path("/usr"), "3.13")
    with pytest.raises(lambda_image.ImageError, match="self-contained"):
        lambda_image.self_contained_prefix(tmp_path, "3.13")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3.13").touch()
    (tmp_path / "lib" / "python3.13").mkdir(parents=True)
    (tmp_path / "lib" / "python3.13" / "os.py").touch()
    assert lambda_image.self_contained_prefix(tmp_path, "3.13") == tmp_path


def test_standin_copies_python_without_tests_tk_or_site_packages(tmp_path: Path) -> None:
    prefix = tmp_path / "py"
    lib = prefix / "lib" / "python3.13"
    for rel in ("os.py", "json/__init__.py", "test/test_os.py", "tkinter/__init__.py", "site-packages/pip/x.py",
                "config-3.13-x86_64-linux-gnu/libpython3.13.a", "lib-dynload/_ssl.so", "lib-dynload/_tkinter.so"):
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        (lib / rel).touch()
    (prefix / "bin").mkdir()
    (prefix / "bin" / "python3.13").touch()
    (prefix / "bin" / "python3").symlink_to("python3.13")
    dest = tmp_path / "rootfs" / "var" / "lang"
    lambda_image._copy_python(prefix, "3.13", dest)
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    assert copied == ["bin", "bin/python3", "bin/python3.13", "lib", "lib/python3.13", "lib/python3.13/json",
                      "lib/python3.13/json/__init__.py", "lib/python3.13/lib-dynload",
                      "lib/python3.13/lib-dynload/_ssl.so", "lib/python3.13/os.py", "lib/python3.13/site-packages"]
    assert (dest / "bin" / "python3").is_symlink()


def test_debian_packages_for_the_interpreters_libraries() -> None:
    libc = Path("/lib/x86_64-linux-gnu/libc.so.6")
    if not libc.exists() or not Path("/usr/bin/dpkg").exists():
        pytest.skip("not a Debian x86_64 host")
    assert lambda_image.debian_packages_for({str(libc)}) == ("libc6",)
    with pytest.raises(lambda_image.ImageError, match="no Debian package"):
        lambda_image.debian_packages_for({"/no/such/lib.so"})


def test_sam_env_writer_keeps_the_demo_running_when_the_emulator_fails(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import keaplink_dev.local.sam_local as sam_local

    def broken(endpoint: str, stack: str) -> dict[str, dict[str, str]]:
        raise ConnectionError("emulator gone")

    monkeypatch.setattr(sam_local, "container_host", lambda: ("10.0.0.1", False))
    monkeypatch.setattr(sam_local, "deployed_environments", broken)
    lines: list[str] = []
    with SamEnvWriter("http://127.0.0.1:4566", "stack", lines.append, tmp_path / "sam-env.json") as writer:
        assert writer.poll() is False and writer.poll() is False  # reported once, not retried every tick
    assert len(lines) == 1 and "emulator gone" in lines[0]
