"""A small PostgreSQL client (wire protocol v3), Python standard library only.

Shared by both services through `inputs = ["lib"]` (see lib/httpkit.py).

    conn = connect(os.environ["DATABASE_URL"])   # postgres://role:pw@127.0.0.1:5432/db
    rows = conn.query("SELECT * FROM assays WHERE ore_type = $1", ["oxide"])  # [dict]
    n = conn.execute("DELETE FROM assays WHERE sample_id = $1", ["A-1"])        # rowcount
    with conn.transaction():   # BEGIN ... COMMIT, or ROLLBACK on an exception
        ...
    conn.close()

Every statement goes through the extended query protocol (Parse/Bind/Execute):
values travel separately from the SQL text, as text, and are never pasted into
it. Authentication: SCRAM-SHA-256 (what sandpit's PostgreSQL uses), also
cleartext and MD5 if the server asks. No TLS: sandpit's database listens on
127.0.0.1 only. A Connection is not thread-safe; callers hold a lock.

Every failure is a PgError. `code` is the SQLSTATE: the server's for SQL errors
(e.g. 23505 unique_violation, 25006 read_only_sql_transaction, 28P01 wrong
password), 08001 when no connection could be made, 08006 when it was lost.
"""

import base64
import contextlib
import hashlib
import hmac
import secrets
import socket
import struct
from urllib.parse import unquote, urlsplit

PROTOCOL_V3 = 196608  # 3 << 16


class PgError(Exception):
    def __init__(self, code, message, severity="ERROR"):
        super().__init__(f"{message} (SQLSTATE {code})")
        self.code, self.message, self.severity = code, message, severity

    @property
    def connection_problem(self):
        """True when the failure is about reaching the server, not about the SQL."""
        return self.code[:2] in ("08", "28", "3D") or self.code[:3] == "57P" or self.severity in ("FATAL", "PANIC")


def parse_url(url):
    """postgres://user:password@host:port/database -> dict (password percent-decoded)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError("database URL must start with postgres:// or postgresql://")
    if not parts.username:
        raise ValueError("database URL has no user name")
    if "sslmode=require" in parts.query or "sslmode=verify" in parts.query:
        raise ValueError("TLS is not supported by pgwire (sandpit's database is on 127.0.0.1)")
    user = unquote(parts.username)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,  # .port raises ValueError for a bad port
        "user": user,
        "password": unquote(parts.password) if parts.password is not None else None,
        "database": unquote(parts.path.lstrip("/")) or user,
    }


def redact_url(url):
    """The URL without its password, for logs and /-pages."""
    p = parse_url(url)
    return f"postgres://{p['user']}@{p['host']}:{p['port']}/{p['database']}"


# -- SCRAM-SHA-256 (RFC 5802 / RFC 7677), pure functions ---------------------

def _hmac(key, msg):
    return hmac.new(key, msg.encode() if isinstance(msg, str) else msg, hashlib.sha256).digest()


def scram_client_first_bare(nonce, user=""):
    # PostgreSQL ignores the SCRAM user name (it uses the startup user), so "n=".
    return f"n={user},r={nonce}"


def scram_client_final(password, client_first_bare, server_first, client_nonce):
    """(client-final-message, expected server signature bytes) for a server-first-message."""
    attrs = dict(item.split("=", 1) for item in server_first.split(","))
    nonce, salt, iterations = attrs.get("r", ""), attrs.get("s"), int(attrs.get("i", "0"))
    if not nonce.startswith(client_nonce) or len(nonce) <= len(client_nonce) or not salt or iterations < 1:
        raise PgError("08P01", "bad SCRAM server-first-message", "FATAL")
    # Passwords are used as UTF-8 without SASLprep: exact for the ASCII ones sandpit issues.
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), iterations)
    client_key = _hmac(salted, "Client Key")
    without_proof = f"c=biws,r={nonce}"  # biws = base64("n,,"): no channel binding
    auth_message = f"{client_first_bare},{server_first},{without_proof}"
    signature = _hmac(hashlib.sha256(client_key).digest(), auth_message)
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    server_signature = _hmac(_hmac(salted, "Server Key"), auth_message)
    return f"{without_proof},p={base64.b64encode(proof).decode()}", server_signature


# -- result values --------------------------------------------------------------

_INT, _FLOAT = {20, 21, 23, 26}, {700, 701, 1700}  # int8/2/4, oid; float4/8, numeric
BOOL_OID = 16


def convert(oid, text):
    """A text-format column value as Python: int, float, bool, else str (timestamps too)."""
    if text is None:
        return None
    if oid in _INT:
        return int(text)
    if oid in _FLOAT:
        return float(text)
    if oid == BOOL_OID:
        return text == "t"
    return text


def encode_param(value):
    """A parameter as text bytes (None -> NULL)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, (bytes, bytearray)):
        raise TypeError("bytes parameters are not supported; pass str")
    return str(value).encode()


def rowcount(tag):
    """'INSERT 0 3' / 'UPDATE 2' / 'SELECT 5' -> 3 / 2 / 5; 0 for 'BEGIN' etc."""
    last = tag.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def _cstr(s):
    return s.encode() + b"\0"


def _msg(kind, payload):
    return kind + struct.pack("!i", len(payload) + 4) + payload


def parse_error_fields(payload):
    """ErrorResponse/NoticeResponse body -> {field code letter: value}."""
    return {chunk[:1].decode(): chunk[1:].decode("utf-8", "replace") for chunk in payload.split(b"\0") if chunk}


class Connection:
    def __init__(self, sock):
        self.sock, self._buf, self.closed = sock, bytearray(), False
        self.parameters = {}     # ParameterStatus values (server_version, TimeZone, ...)
        self.status = "I"        # from ReadyForQuery: I idle, T in transaction, E failed transaction

    # -- framing -----------------------------------------------------------------
    def _send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as err:
            self._lost(err)

    def _recv_exact(self, n):
        while len(self._buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except OSError as err:
                self._lost(err)
            if not chunk:
                self._lost("server closed the connection")
            self._buf += chunk
        data, self._buf = bytes(self._buf[:n]), self._buf[n:]
        return data

    def _lost(self, why):
        self.close()
        raise PgError("08006", f"connection to PostgreSQL lost: {why}", "FATAL")

    def _read(self):
        """Next message as (kind, payload), skipping notices and parameter updates."""
        while True:
            kind, length = struct.unpack("!ci", self._recv_exact(5))
            payload = self._recv_exact(length - 4)
            if kind == b"S":
                name, value = payload.split(b"\0")[:2]
                self.parameters[name.decode()] = value.decode()
            elif kind not in (b"N", b"A"):  # notice, notification: ignored
                return kind, payload

    def _error(self, payload):
        f = parse_error_fields(payload)
        err = PgError(f.get("C", "XX000"), f.get("M", "unknown error"), f.get("V", f.get("S", "ERROR")))
        if err.severity in ("FATAL", "PANIC"):
            self.close()  # the server ends the session after these
        return err

    # -- startup and authentication ---------------------------------------------
    def _startup(self, user, password, database):
        params = {"user": user, "database": database, "application_name": "pgwire",
                  "client_encoding": "UTF8", "DateStyle": "ISO", "TimeZone": "UTC"}
        body = struct.pack("!i", PROTOCOL_V3) + b"".join(_cstr(k) + _cstr(v) for k, v in params.items()) + b"\0"
        self._send(struct.pack("!i", len(body) + 4) + body)
        scram = None
        while True:
            kind, payload = self._read()
            if kind == b"E":
                raise self._error(payload)
            if kind == b"Z":
                self.status = payload.decode()
                return
            if kind != b"R":
                continue  # BackendKeyData etc.
            code = struct.unpack("!i", payload[:4])[0]
            if code in (3, 5, 10) and password is None:
                raise PgError("28P01", f"server asks for a password for {user!r} but the URL has none", "FATAL")
            if code == 3:  # cleartext
                self._send(_msg(b"p", _cstr(password)))
            elif code == 5:  # md5("md5" + md5(md5(password + user) + salt))
                inner = hashlib.md5((password + user).encode()).hexdigest().encode()
                self._send(_msg(b"p", _cstr("md5" + hashlib.md5(inner + payload[4:8]).hexdigest())))
            elif code == 10:  # AuthenticationSASL: list of mechanisms
                if b"SCRAM-SHA-256" not in payload[4:].split(b"\0"):
                    raise PgError("08P01", "server offers no SCRAM-SHA-256", "FATAL")
                nonce = base64.b64encode(secrets.token_bytes(18)).decode()
                first_bare = scram_client_first_bare(nonce)
                first = ("n,," + first_bare).encode()
                self._send(_msg(b"p", _cstr("SCRAM-SHA-256") + struct.pack("!i", len(first)) + first))
                scram = (nonce, first_bare)
            elif code == 11 and scram:  # AuthenticationSASLContinue: server-first-message
                final, scram = scram_client_final(password, scram[1], payload[4:].decode(), scram[0])
                self._send(_msg(b"p", final.encode()))
            elif code == 12 and isinstance(scram, bytes):  # AuthenticationSASLFinal: v=<signature>
                attrs = dict(i.split("=", 1) for i in payload[4:].decode().split(",") if "=" in i)
                if not hmac.compare_digest(base64.b64decode(attrs.get("v", "")), scram):
                    self.close()
                    raise PgError("28000", "server's SCRAM signature is wrong (not the real server?)", "FATAL")
                scram = True  # server verified
            elif code == 0 and scram not in (None, True):
                raise PgError("28000", "server skipped the SCRAM exchange", "FATAL")
            elif code != 0:
                raise PgError("08P01", f"unsupported authentication request {code}", "FATAL")

    # -- queries ------------------------------------------------------------------
    def _run(self, sql, params):
        """Parse/Bind/Describe/Execute/Sync one statement; returns (columns, rows, tag)."""
        if self.closed:
            raise PgError("08003", "connection is closed", "FATAL")
        values = [encode_param(v) for v in params]
        bind = b"\0\0" + struct.pack("!hh", 0, len(values))  # unnamed portal+statement, all text
        for v in values:
            bind += struct.pack("!i", -1) if v is None else struct.pack("!i", len(v)) + v
        bind += struct.pack("!h", 0)  # results as text
        self._send(_msg(b"P", b"\0" + _cstr(sql) + struct.pack("!h", 0)) + _msg(b"B", bind)
                   + _msg(b"D", b"P\0") + _msg(b"E", b"\0" + struct.pack("!i", 0)) + _msg(b"S", b""))
        columns, rows, tag, error = [], [], "", None
        while True:
            kind, payload = self._read()
            if kind == b"T":  # RowDescription: name, table oid, attnum, type oid, ...
                count, pos = struct.unpack("!h", payload[:2])[0], 2
                for _ in range(count):
                    end = payload.index(b"\0", pos)
                    columns.append((payload[pos:end].decode(), struct.unpack("!i", payload[end + 7:end + 11])[0]))
                    pos = end + 19
            elif kind == b"D":  # DataRow
                row, pos = {}, 2
                for name, oid in columns:
                    size = struct.unpack("!i", payload[pos:pos + 4])[0]
                    pos += 4
                    text = None if size < 0 else payload[pos:pos + size].decode()
                    pos += max(size, 0)
                    row[name] = convert(oid, text)
                rows.append(row)
            elif kind == b"C":
                tag = payload.rstrip(b"\0").decode()
            elif kind == b"E":
                error = self._error(payload)  # the server skips to Sync; keep reading
                if self.closed:
                    raise error
            elif kind == b"Z":
                self.status = payload.decode()
                if error:
                    raise error
                return columns, rows, tag
            # '1' ParseComplete, '2' BindComplete, 'n' NoData, 'I' EmptyQuery: nothing to do

    def query(self, sql, params=()):
        """Rows as a list of dicts (column name -> converted value)."""
        return self._run(sql, params)[1]

    def execute(self, sql, params=()):
        """Number of rows the statement affected (from the CommandComplete tag)."""
        return rowcount(self._run(sql, params)[2])

    def begin(self):
        self._run("BEGIN", ())

    def commit(self):
        self._run("COMMIT", ())

    def rollback(self):
        self._run("ROLLBACK", ())

    @contextlib.contextmanager
    def transaction(self):
        self.begin()
        try:
            yield self
        except BaseException:
            if not self.closed:
                self.rollback()
            raise
        self.commit()

    def close(self):
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                self.sock.sendall(_msg(b"X", b""))  # Terminate
            self.sock.close()


def connect(url, timeout=10.0):
    """Open and authenticate a Connection, or raise PgError (08001 / 28P01 / 3D000 ...)."""
    p = parse_url(url)
    try:
        sock = socket.create_connection((p["host"], p["port"]), timeout=timeout)
    except OSError as err:
        raise PgError("08001", f"cannot connect to {p['host']}:{p['port']}: {err.strerror or err}", "FATAL") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Connection(sock)
    try:
        conn._startup(p["user"], p["password"], p["database"])
    except BaseException:
        conn.close()
        raise
    return conn
