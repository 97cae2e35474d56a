"""A small Hugging-Face-Hub-compatible HTTP server for tests (standard library only).

It implements the part of the Hub API that `huggingface_hub` (1.33 and 2.x) and `transformers` use to push and
pull model repositories, so that real client code can talk to it over HTTP on 127.0.0.1:

    POST   /api/repos/create                           create a repo (409 when it exists)
    DELETE /api/repos/delete                           delete a repo (404 RepoNotFound when missing)
    GET    /api/whoami-v2                              the single fake user "user"
    GET    /api/{type}s/{repo}[/revision/{rev}]        repo info (sha, siblings, private, config)
    PUT    /api/{type}s/{repo}/settings                change visibility
    POST   /api/{type}s/{repo}/preupload/{rev}         always answers uploadMode "regular"
    POST   /api/{type}s/{repo}/commit/{branch}         NDJSON commit: header / file (base64) / deletedFile /
                                                       deletedFolder lines
    GET    /api/{type}s/{repo}/tree/{rev}[/{path}]     tree listing (recursive or not)
    POST   /api/{type}s/{repo}/paths-info/{rev}        info on given paths
    GET    /api/{type}s/{repo}/refs                    branches and tags
    GET    /api/{type}s/{repo}/commits/{rev}           history, newest first
    POST/DELETE /api/{type}s/{repo}/branch/{branch}    create (from "startingPoint") / delete a branch
    POST   /api/{type}s/{repo}/tag/{rev}               tag a revision; DELETE /tag/{tag} deletes it
    POST   /api/validate-yaml                          model-card metadata must be a YAML mapping
    HEAD/GET /[{type}s/]{repo}/resolve/{rev}/{path}    file download with X-Repo-Commit, ETag (git blob sha1),
                                                       Content-Length; Range requests answered with 206.
                                                       LFS-type files (*.safetensors, *.bin, ..., or >= 10 MB)
                                                       answer like the Hub: 302 to a "CDN" on another host name
                                                       (localhost instead of 127.0.0.1) with X-Linked-Etag (sha256)
                                                       and X-Linked-Size, and carry `lfs` info in listings.
    HEAD/GET /_cdn/{sha256}/{name}                     that CDN (no auth)

Every commit gets a fresh 40-hex sha; a revision is a branch, a tag, or a (prefix of a) commit sha. Files are kept
in memory; uploads are always "regular" (base64 inside the commit), never LFS or Xet uploads. Errors carry the
`X-Error-Code` header (RepoNotFound, RevisionNotFound, EntryNotFound) that `huggingface_hub` turns into its typed
exceptions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

DEFAULT_TOKEN = "hf_localhubfaketoken0000000000000000"
DEFAULT_USER = "user"
REPO_TYPES = ("model", "dataset", "space")
_INITIAL_GITATTRIBUTES = b"".join(
    b"*%s filter=lfs diff=lfs merge=lfs -text\n" % suffix.encode()
    for suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".pkl", ".gguf")
)
_CONFIG_KEYS_IN_INFO = ("architectures", "model_type", "auto_map")
# Files the Hub keeps in LFS (its default .gitattributes patterns, or big files): served through a CDN redirect.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".pkl", ".gguf", ".npy",
                ".npz", ".zip", ".model")
LFS_MIN_SIZE = 10 * 1024 * 1024
_LFS_POINTER_SIZE = 134


def is_lfs_path(path: str, size: int) -> bool:
    return path.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE


class HubError(Exception):
    """An HTTP error answer: status, `X-Error-Code` (may be None) and message."""

    def __init__(self, status: int, message: str, error_code: str | None = None, headers: dict | None = None,
                 body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.headers = headers or {}
        self.body = body or {}


def git_blob_sha1(content: bytes) -> str:
    """The git object id of a blob, which is what the Hub reports as `oid`/ETag of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _iso_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Commit:
    """One immutable snapshot: `files` maps a path in the repo to its blob id."""

    sha: str
    parent: str | None
    files: dict[str, str]
    title: str
    message: str
    date: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit:
        """Branch, tag, `refs/heads/x` / `refs/tags/x`, full sha or unique sha prefix (>= 7 chars)."""
        name = revision
        for prefix in ("refs/heads/", "refs/tags/"):
            if name.startswith(prefix):
                name = name[len(prefix):]
        sha = self.branches.get(name) or self.tags.get(name)
        if sha is None and name in self.commits:
            sha = name
        if sha is None and len(name) >= 7:
            matches = [s for s in self.commits if s.startswith(name.lower())]
            sha = matches[0] if len(matches) == 1 else None
        if sha is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commits[sha]


class HubStore:
    """All repos, commits and blobs of the local Hub, guarded by one lock."""

    def __init__(self, tokens: dict[str, str]):
        self.tokens = tokens  # token -> user name
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.blob_by_sha256: dict[str, str] = {}
        self.lock = threading.RLock()

    def sha256_of(self, blob_id: str) -> str:
        return hashlib.sha256(self.blobs[blob_id]).hexdigest()

    # -- repos -----------------------------------------------------------------------------------------------
    def get_repo(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and user is None):
            raise HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        if (repo_type, repo_id) in self.repos:
            raise HubError(409, f"You already created this {repo_type} repo")
        repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, created_at=_iso_now())
        self.repos[(repo_type, repo_id)] = repo
        self.commit(repo, "main", "initial commit", "", {".gitattributes": _INITIAL_GITATTRIBUTES}, [], [])
        return repo

    def commit(
        self,
        repo: Repo,
        branch: str,
        title: str,
        message: str,
        added: dict[str, bytes],
        deleted_files: list[str],
        deleted_folders: list[str],
        parent_commit: str | None = None,
    ) -> Commit:
        head_sha = repo.branches.get(branch)
        if head_sha is None and repo.commits:
            raise HubError(404, f"Invalid rev id: {branch} (commits go to a branch)", "RevisionNotFound")
        if parent_commit is not None and parent_commit != head_sha:
            raise HubError(412, f"A commit has happened since. Please refresh and try again (head is {head_sha}).")
        files = dict(repo.commits[head_sha].files) if head_sha else {}
        for path in deleted_files:
            if path not in files:
                raise HubError(404, f"File to delete not found: {path}", "EntryNotFound")
            del files[path]
        for folder in deleted_folders:
            prefix = folder.rstrip("/") + "/"
            doomed = [p for p in files if p.startswith(prefix)]
            if not doomed:
                raise HubError(404, f"Folder to delete not found: {folder}", "EntryNotFound")
            for path in doomed:
                del files[path]
        for path, content in added.items():
            blob_id = git_blob_sha1(content)
            self.blobs[blob_id] = content
            self.blob_by_sha256[hashlib.sha256(content).hexdigest()] = blob_id
            files[path] = blob_id
        seed = json.dumps([repo.repo_id, head_sha, sorted(files.items()), title, uuid.uuid4().hex])
        sha = hashlib.sha1(seed.encode()).hexdigest()
        commit = Commit(sha=sha, parent=head_sha, files=files, title=title, message=message, date=_iso_now())
        repo.commits[sha] = commit
        repo.branches[branch] = sha
        return commit

    # -- listings --------------------------------------------------------------------------------------------
    def lfs_info(self, path: str, blob_id: str) -> dict[str, Any] | None:
        size = len(self.blobs[blob_id])
        if not is_lfs_path(path, size):
            return None
        return {"oid": self.sha256_of(blob_id), "size": size, "pointerSize": _LFS_POINTER_SIZE}

    def file_entry(self, path: str, blob_id: str) -> dict[str, Any]:
        entry = {"type": "file", "oid": blob_id, "size": len(self.blobs[blob_id]), "path": path}
        lfs = self.lfs_info(path, blob_id)
        if lfs is not None:
            entry["lfs"] = lfs
        return entry

    @staticmethod
    def folder_entry(commit: Commit, path: str) -> dict[str, Any]:
        prefix = path + "/"
        inside = sorted((p, b) for p, b in commit.files.items() if p.startswith(prefix))
        tree_id = hashlib.sha1(json.dumps(inside).encode()).hexdigest()
        return {"type": "directory", "oid": tree_id, "size": 0, "path": path}

    def tree(self, commit: Commit, path: str, recursive: bool) -> list[dict[str, Any]]:
        path = path.strip("/")
        prefix = path + "/" if path else ""
        if path and path in commit.files:
            raise HubError(404, f"{path} is a file, not a directory", "EntryNotFound")
        entries: dict[str, dict[str, Any]] = {}
        for file_path, blob_id in sorted(commit.files.items()):
            if not file_path.startswith(prefix):
                continue
            parts = file_path[len(prefix):].split("/")
            for depth in range(1, len(parts)):
                folder = prefix + "/".join(parts[:depth])
                if (recursive or depth == 1) and folder not in entries:
                    entries[folder] = self.folder_entry(commit, folder)
            if recursive or len(parts) == 1:
                entries[file_path] = self.file_entry(file_path, blob_id)
        if path and not entries:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        # Folders before files at each level, like the Hub.
        return sorted(entries.values(), key=lambda e: (e["path"].count("/"), e["type"] != "directory", e["path"]))

    def path_info(self, commit: Commit, path: str) -> dict[str, Any] | None:
        path = path.strip("/")
        if path in commit.files:
            return self.file_entry(path, commit.files[path])
        if any(p.startswith(path + "/") for p in commit.files):
            return self.folder_entry(commit, path)
        return None

    def repo_info(self, repo: Repo, commit: Commit, with_blobs: bool) -> dict[str, Any]:
        siblings = []
        for path, blob_id in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                sibling.update(size=len(self.blobs[blob_id]), blobId=blob_id)
                lfs = self.lfs_info(path, blob_id)
                if lfs is not None:
                    sibling["lfs"] = {"sha256": lfs["oid"], "size": lfs["size"], "pointerSize": lfs["pointerSize"]}
            siblings.append(sibling)
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.sha,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(len(self.blobs[b]) for b in commit.files.values()),
        }
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
            config = self._config_summary(commit)
            if config is not None:
                info["config"] = config
        return info

    def _config_summary(self, commit: Commit) -> dict[str, Any] | None:
        blob_id = commit.files.get("config.json")
        if blob_id is None:
            return None
        try:
            config = json.loads(self.blobs[blob_id])
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(config, dict):
            return None
        return {k: config[k] for k in _CONFIG_KEYS_IN_INFO if k in config}

    def history(self, repo: Repo, commit: Commit) -> list[dict[str, Any]]:
        items = []
        current: Commit | None = commit
        while current is not None:
            items.append(
                {
                    "id": current.sha,
                    "title": current.title,
                    "message": current.message,
                    "authors": [{"user": DEFAULT_USER}],
                    "date": current.date,
                }
            )
            current = repo.commits[current.parent] if current.parent else None
        return items


class HubRequestHandler(BaseHTTPRequestHandler):
    """Routes one request to the store; `self.server.store` is the shared `HubStore`."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's delayed ACK
    # (~40 ms per response), which made remote-code loads (60+ small files) take seconds.
    disable_nagle_algorithm = True
    server: "_HubHTTPServer"

    # -- plumbing --------------------------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False):
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "application/json")
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _send_json(self, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _user(self) -> str | None:
        """The user of a valid bearer token, None without a token; a wrong token is a 401."""
        auth = self.headers.get("Authorization")
        if not auth:
            return None
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else auth
        user = self.server.store.tokens.get(token.strip())
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def _require_user(self) -> str:
        user = self._user()
        if user is None:
            raise HubError(401, "You must be authenticated to do this (no token sent)")
        return user

    def _dispatch(self, method: str) -> None:
        body = self._read_body() if method in ("POST", "PUT", "DELETE") else b""
        split = urlsplit(self.path)
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        try:
            with self.server.store.lock:
                self._route(method, segments, query, body)
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.error_code:
                headers["X-Error-Code"] = err.error_code
            payload = json.dumps({"error": err.message, **err.body}).encode()
            self._send(err.status, payload, headers, head=method == "HEAD")
        except (ValueError, KeyError, TypeError) as err:  # malformed client payloads
            message = f"Bad request: {type(err).__name__}: {err}"
            self._send(400, json.dumps({"error": message}).encode(), {"X-Error-Message": message[:200]})

    # -- routing ---------------------------------------------------------------------------------------------
    def _route(self, method: str, seg: list[str], query: dict[str, str], body: bytes) -> None:
        if seg[:1] == ["api"]:
            return self._route_api(method, seg[1:], query, body)
        if seg[:1] == ["_cdn"] and len(seg) >= 2 and method in ("GET", "HEAD"):
            return self._serve_cdn(method, seg[1], "/".join(seg[2:]) or seg[1])
        repo_type = "model"
        if seg and seg[0] in ("datasets", "spaces"):
            repo_type, seg = seg[0][:-1], seg[1:]
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(method, repo_type, "/".join(seg[:2]), seg[3], "/".join(seg[4:]))
        if len(seg) >= 4 and seg[1] == "resolve":
            raise HubError(404, "Repository not found (the local hub needs a 'namespace/name' repo id)", "RepoNotFound")
        raise HubError(404, f"Not found: {method} {self.path}")

    def _route_api(self, method: str, seg: list[str], query: dict[str, str], body: bytes) -> None:
        store = self.server.store
        if seg == ["whoami-v2"] and method == "GET":
            return self._send_json(self._whoami())
        if seg == ["validate-yaml"] and method == "POST":
            return self._validate_yaml(json.loads(body or b"{}").get("content", ""))
        if seg[:1] == ["repos"] and method in ("POST", "DELETE") and len(seg) == 2:
            return self._repos_endpoint(seg[1], json.loads(body or b"{}"))
        if not seg or seg[0] not in ("models", "datasets", "spaces"):
            raise HubError(404, f"Not found: {method} {self.path}")
        if len(seg) < 3:
            raise HubError(404, "Repository not found (the local hub needs a 'namespace/name' repo id)", "RepoNotFound")
        repo_type, repo_id, action, rest = seg[0][:-1], "/".join(seg[1:3]), seg[3:4], seg[4:]
        user = self._user()
        repo = store.get_repo(repo_type, repo_id, user)

        if not action and method == "GET":
            return self._send_json(store.repo_info(repo, repo.resolve("main"), bool(query.get("blobs"))))
        verb = action[0] if action else ""
        if verb == "revision" and method == "GET" and rest:
            commit = repo.resolve("/".join(rest))
            return self._send_json(store.repo_info(repo, commit, bool(query.get("blobs"))))
        if verb == "tree" and method == "GET" and rest:
            recursive = query.get("recursive", "false").lower() in ("1", "true")
            return self._send_json(store.tree(repo.resolve(rest[0]), "/".join(rest[1:]), recursive))
        if verb == "paths-info" and method == "POST" and rest:
            return self._paths_info(repo, rest[0], body)
        if verb == "refs" and method == "GET":
            return self._send_json(self._refs(repo))
        if verb == "commits" and method == "GET" and rest:
            return self._send_json(store.history(repo, repo.resolve("/".join(rest))))

        self._require_user()
        if verb == "settings" and method == "PUT":
            settings = json.loads(body or b"{}")
            if "private" in settings:
                repo.private = bool(settings["private"])
            if "visibility" in settings:
                repo.private = settings["visibility"] != "public"
            return self._send_json({})
        if verb == "preupload" and method == "POST" and rest:
            return self._preupload(repo, rest[0], json.loads(body))
        if verb == "commit" and method == "POST" and rest:
            return self._commit(repo, "/".join(rest), body, query)
        if verb == "branch" and rest and method in ("POST", "DELETE"):
            return self._branch(repo, "/".join(rest), method, json.loads(body or b"{}"))
        if verb == "tag" and rest and method in ("POST", "DELETE"):
            return self._tag(repo, "/".join(rest), method, json.loads(body or b"{}"))
        raise HubError(404, f"Not found: {method} {self.path}")

    # -- endpoints -------------------------------------------------------------------------------------------
    def _whoami(self) -> dict[str, Any]:
        user = self._require_user()
        return {
            "type": "user",
            "id": hashlib.sha1(user.encode()).hexdigest()[:24],
            "name": user,
            "fullname": user.capitalize(),
            "email": f"{user}@localhost",
            "emailVerified": True,
            "isPro": False,
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "local-hub", "role": "write"}},
        }

    def _validate_yaml(self, content: str) -> None:
        """Model-card metadata check: the front matter between '---' lines must be a YAML mapping."""
        errors = []
        lines = content.lstrip().splitlines()
        if lines and lines[0].strip() == "---":
            end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
            if end is None:
                errors.append("metadata block opened with '---' is never closed")
            else:
                try:
                    import yaml  # PyYAML, a dependency of huggingface_hub

                    metadata = yaml.safe_load("\n".join(lines[1:end]))
                    if metadata is not None and not isinstance(metadata, dict):
                        errors.append(f"metadata must be a mapping, got {type(metadata).__name__}")
                except ImportError:
                    pass
                except yaml.YAMLError as err:
                    errors.append(f"invalid YAML: {err}")
        status = 400 if errors else 200
        self._send_json({"errors": [{"message": m} for m in errors], "warnings": []}, status=status)

    def _repos_endpoint(self, action: str, payload: dict[str, Any]) -> None:
        store = self.server.store
        user = self._require_user()
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Unsupported repo type {repo_type!r}")
        namespace = payload.get("organization") or user
        repo_id = f"{namespace}/{payload['name']}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.server.endpoint}/{prefix}{repo_id}"
        if action == "create":
            private = bool(payload.get("private", False)) or payload.get("visibility") in ("private", "protected")
            if (repo_type, repo_id) in store.repos:  # the Hub's 409 answer carries the url (create_repo reads it)
                raise HubError(409, f"You already created this {repo_type} repo", body={"url": url})
            store.create_repo(repo_type, repo_id, private)
            return self._send_json({"url": url, "name": repo_id, "id": repo_id})
        if action == "delete":
            store.get_repo(repo_type, repo_id, user)
            del store.repos[(repo_type, repo_id)]
            return self._send_json({})
        raise HubError(404, f"Not found: POST /api/repos/{action}")

    def _refs(self, repo: Repo) -> dict[str, Any]:
        def refs(names: dict[str, str], kind: str) -> list[dict[str, str]]:
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": s} for n, s in sorted(names.items())]

        return {"branches": refs(repo.branches, "heads"), "tags": refs(repo.tags, "tags"), "converts": [],
                "pullRequests": []}

    def _paths_info(self, repo: Repo, revision: str, body: bytes) -> None:
        commit = repo.resolve(revision)
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        infos = [self.server.store.path_info(commit, p) for p in ([paths] if isinstance(paths, str) else paths)]
        self._send_json([info for info in infos if info is not None])

    def _preupload(self, repo: Repo, revision: str, payload: dict[str, Any]) -> None:
        commit = repo.resolve(revision)
        answer = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": commit.files.get(f["path"])}
            for f in payload["files"]
        ]
        self._send_json({"files": answer, "commitOid": commit.sha})

    def _commit(self, repo: Repo, branch: str, body: bytes, query: dict[str, str]) -> None:
        if query.get("create_pr") in ("1", "true", "True"):
            raise HubError(400, "The local test hub does not support pull requests (create_pr)")
        header: dict[str, Any] = {}
        added: dict[str, bytes] = {}
        deleted_files: list[str] = []
        deleted_folders: list[str] = []
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, f"Unsupported file encoding {value.get('encoding')!r}")
                added[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                deleted_files.append(value["path"])
            elif key == "deletedFolder":
                deleted_folders.append(value["path"])
            else:
                raise HubError(400, f"Unsupported commit operation {key!r} (the local hub only takes regular files)")
        if branch in repo.tags or branch in repo.commits:
            raise HubError(400, f"Can only commit to a branch, got {branch!r}")
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        commit = self.server.store.commit(
            repo, branch, header.get("summary") or "Commit", header.get("description") or "", added,
            deleted_files, deleted_folders, parent_commit=header.get("parentCommit"),
        )
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        self._send_json({
            "success": True,
            "commitOid": commit.sha,
            "commitUrl": f"{self.server.endpoint}/{prefix}{repo.repo_id}/commit/{commit.sha}",
            "pullRequestUrl": None,
            "hookOutput": "",
        })

    def _branch(self, repo: Repo, branch: str, method: str, payload: dict[str, Any]) -> None:
        if method == "DELETE":
            if branch not in repo.branches:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            if branch == "main":
                raise HubError(403, "Cannot delete the default branch")
            del repo.branches[branch]
            return self._send_json({})
        if branch.startswith("refs/"):
            raise HubError(400, f"Invalid reference for a branch: {branch}")
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        repo.branches[branch] = repo.resolve(payload.get("startingPoint") or "main").sha
        return self._send_json({})

    def _tag(self, repo: Repo, name: str, method: str, payload: dict[str, Any]) -> None:
        if method == "DELETE":
            if name not in repo.tags:
                raise HubError(404, f"Invalid rev id: {name}", "RevisionNotFound")
            del repo.tags[name]
            return self._send_json({})
        tag = payload["tag"]
        if tag in repo.tags:
            raise HubError(409, f"Tag already exists: {tag}")
        repo.tags[tag] = repo.resolve(name).sha
        return self._send_json({})

    def _resolve(self, method: str, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        store = self.server.store
        repo = store.get_repo(repo_type, repo_id, self._user())
        commit = repo.resolve(revision)
        blob_id = commit.files.get(path)
        if blob_id is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        content = store.blobs[blob_id]
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{blob_id}"'}
        if is_lfs_path(path, len(content)):
            # Like the Hub for LFS files: a redirect to another host (the "CDN"), the metadata on the redirect itself.
            sha256 = store.sha256_of(blob_id)
            headers.update({
                "X-Linked-Etag": f'"{sha256}"',
                "X-Linked-Size": str(len(content)),
                "Location": f"{self.server.cdn_endpoint}/_cdn/{sha256}/{quote(path.rsplit('/', 1)[-1])}",
            })
            return self._send(302, b"", headers, head=method == "HEAD")
        self._serve_bytes(method, content, path, headers)

    def _serve_cdn(self, method: str, sha256: str, filename: str) -> None:
        blob_id = self.server.store.blob_by_sha256.get(sha256)
        if blob_id is None:
            raise HubError(404, f"No such object: {sha256}")
        self._serve_bytes(method, self.server.store.blobs[blob_id], filename, {"ETag": f'"{sha256}"'})

    def _serve_bytes(self, method: str, content: bytes, path: str, headers: dict[str, str]) -> None:
        """200 with the content, or 206 with the requested `Range: bytes=a-b` slice."""
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "Content-Disposition": f'inline; filename="{path.rsplit("/", 1)[-1]}"',
            **headers,
        }
        status, payload = 200, content
        range_header = self.headers.get("Range")
        if method == "GET" and range_header and range_header.startswith("bytes="):
            start_text, _, end_text = range_header[len("bytes="):].split(",")[0].partition("-")
            start = int(start_text) if start_text else max(len(content) - int(end_text), 0)
            end = int(end_text) if (end_text and start_text) else len(content) - 1
            if start >= len(content):
                headers["Content-Range"] = f"bytes */{len(content)}"
                return self._send(416, b"", headers)
            end = min(end, len(content) - 1)
            status, payload = 206, content[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        headers["Content-Length"] = str(len(payload))
        self._send(status, payload, headers, head=method == "HEAD")


class _HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], store: HubStore, verbose: bool):
        super().__init__(address, HubRequestHandler)
        self.store = store
        self.verbose = verbose
        self.endpoint = f"http://{address[0]}:{self.server_address[1]}"
        # Another host name for the same socket: the client treats it as a foreign CDN (no auth, no redirect follow).
        self.cdn_endpoint = f"http://localhost:{self.server_address[1]}"


class LocalHubServer:
    """The local Hub, served from a daemon thread. Use as a context manager or call start()/stop().

    `endpoint` is the base URL (`http://127.0.0.1:<port>`), `token` a token accepted for the user `user`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str = DEFAULT_TOKEN,
                 user: str = DEFAULT_USER, verbose: bool = False):
        self.store = HubStore({token: user})
        self.token = token
        self.user = user
        self._httpd = _HubHTTPServer((host, port), self.store, verbose)
        self.endpoint = self._httpd.endpoint
        self._thread: threading.Thread | None = None

    def start(self) -> "LocalHubServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "LocalHubServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def main() -> None:
    """Serve until interrupted: `python -m tests.hub_server --port 8765`."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    args = parser.parse_args()
    server = LocalHubServer(args.host, args.port, args.token, verbose=True).start()
    print(f"local hub at {server.endpoint}  (HF_ENDPOINT={server.endpoint} HF_TOKEN={server.token})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
