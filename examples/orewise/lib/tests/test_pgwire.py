"""Pure parts of pgwire (lib/, shared by both services), plus the
message flow against a scripted fake server over a socket pair. The real
server is exercised by hand (README: "Trying it with PostgreSQL")."""

import base64
import socket
import struct
import threading
import unittest

import pgwire


class UrlTest(unittest.TestCase):
    def test_parse_url_decodes_password(self):
        p = pgwire.parse_url("postgres://biome_alice:a%2Fb%3Ac%40d%25e@127.0.0.1:55432/orewise_alice")
        self.assertEqual(p, {"host": "127.0.0.1", "port": 55432, "user": "biome_alice",
                             "password": "a/b:c@d%e", "database": "orewise_alice"})

    def test_defaults_and_errors(self):
        p = pgwire.parse_url("postgresql://bob@localhost")
        self.assertEqual((p["port"], p["database"], p["password"]), (5432, "bob", None))
        for bad in ("mysql://u:p@h/db", "postgres://127.0.0.1/db", "postgres://u:p@h:99999/db",
                    "postgres://u:p@h/db?sslmode=require"):
            with self.assertRaises(ValueError, msg=bad):
                pgwire.parse_url(bad)

    def test_redact_url_drops_the_password(self):
        url = "postgres://r:s3cret@127.0.0.1:5432/db"
        self.assertEqual(pgwire.redact_url(url), "postgres://r@127.0.0.1:5432/db")


class ScramTest(unittest.TestCase):
    def test_rfc7677_vector(self):
        nonce = "rOprNGfwEbeRWgbNEkqO"
        server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        bare = pgwire.scram_client_first_bare(nonce, "user")
        self.assertEqual(bare, "n=user,r=rOprNGfwEbeRWgbNEkqO")
        final, server_signature = pgwire.scram_client_final("pencil", bare, server_first, nonce)
        self.assertEqual(final, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
        self.assertEqual(base64.b64encode(server_signature).decode(), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")

    def test_server_nonce_must_extend_ours(self):
        with self.assertRaises(pgwire.PgError):
            pgwire.scram_client_final("pw", "n=,r=abc", "r=xyz123,s=c2FsdA==,i=4096", "abc")


class ValuesTest(unittest.TestCase):
    def test_convert_by_type_oid(self):
        self.assertEqual(pgwire.convert(23, "42"), 42)
        self.assertEqual(pgwire.convert(20, "-9000000000"), -9000000000)
        self.assertEqual(pgwire.convert(1700, "1.820"), 1.82)
        self.assertEqual(pgwire.convert(701, "0.41"), 0.41)
        self.assertIs(pgwire.convert(16, "t"), True)
        self.assertIs(pgwire.convert(16, "f"), False)
        self.assertEqual(pgwire.convert(1184, "2024-03-04 08:15:00+00"), "2024-03-04 08:15:00+00")
        self.assertIsNone(pgwire.convert(23, None))

    def test_encode_param(self):
        self.assertEqual([pgwire.encode_param(v) for v in (None, True, 3, 0.1, "O'Brien")],
                         [None, b"true", b"3", b"0.1", b"O'Brien"])

    def test_rowcount_and_error_fields(self):
        self.assertEqual([pgwire.rowcount(t) for t in ("INSERT 0 3", "UPDATE 2", "SELECT 5", "BEGIN")], [3, 2, 5, 0])
        fields = pgwire.parse_error_fields(b"SERROR\0VERROR\0C23505\0Mduplicate key\0\0")
        self.assertEqual((fields["C"], fields["M"]), ("23505", "duplicate key"))
        self.assertTrue(pgwire.PgError("08006", "lost", "FATAL").connection_problem)
        self.assertFalse(pgwire.PgError("23505", "duplicate").connection_problem)


def msg(kind, payload=b""):
    return kind + struct.pack("!i", len(payload) + 4) + payload


def row_description(*columns):
    out = struct.pack("!h", len(columns))
    for name, oid in columns:
        out += name.encode() + b"\0" + struct.pack("!ihihih", 0, 0, oid, -1, -1, 0)
    return out


def data_row(*values):
    out = struct.pack("!h", len(values))
    for v in values:
        out += struct.pack("!i", -1) if v is None else struct.pack("!i", len(v)) + v
    return out


class FakeServerTest(unittest.TestCase):
    """The client's side of the protocol against canned server messages."""

    def setUp(self):
        self.client, self.server = socket.socketpair()
        self.server.settimeout(5)
        self.client.settimeout(5)
        self.received = b""

    def tearDown(self):
        self.server.close()
        self.client.close()

    def reply(self, data, read_until):
        """Read what the client sends until `read_until` appears, then send `data`."""
        def run():
            while read_until not in self.received:
                self.received += self.server.recv(65536)
            self.server.sendall(data)
        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def test_startup_query_and_error(self):
        auth_ok = msg(b"R", struct.pack("!i", 0)) + msg(b"S", b"server_version\x0015.0\0") + msg(b"Z", b"I")
        thread = self.reply(auth_ok, b"TimeZone\0UTC\0\0")
        conn = pgwire.Connection(self.client)
        conn._startup("alice", "pw", "orewise")
        thread.join()
        self.assertEqual(conn.parameters["server_version"], "15.0")
        self.assertIn(b"user\0alice\0database\0orewise\0", self.received)

        rows = (msg(b"1") + msg(b"2") + msg(b"T", row_description(("sample_id", 25), ("au_gpt", 701)))
                + msg(b"D", data_row(b"O'Brien-1", b"1.5")) + msg(b"D", data_row(b"X-2", None))
                + msg(b"C", b"SELECT 2\0") + msg(b"Z", b"I"))
        self.received = b""
        thread = self.reply(rows, msg(b"S"))
        result = conn.query("SELECT sample_id, au_gpt FROM assays WHERE sample_id = $1", ["O'Brien-1"])
        thread.join()
        self.assertEqual(result, [{"sample_id": "O'Brien-1", "au_gpt": 1.5}, {"sample_id": "X-2", "au_gpt": None}])
        # the SQL text carries only $1; the value travels in Bind, length-prefixed
        self.assertIn(b"WHERE sample_id = $1\0", self.received)
        self.assertIn(struct.pack("!i", 9) + b"O'Brien-1", self.received)

        error = msg(b"E", b"SERROR\0VERROR\0C25006\0Mcannot execute INSERT in a read-only transaction\0\0")
        self.received = b""
        thread = self.reply(error + msg(b"Z", b"I"), msg(b"S"))
        with self.assertRaises(pgwire.PgError) as ctx:
            conn.execute("INSERT INTO ore_types (code) VALUES ($1)", ["x"])
        thread.join()
        self.assertEqual(ctx.exception.code, "25006")
        self.assertFalse(conn.closed)  # an ERROR leaves the connection usable

    def test_fatal_error_at_startup_closes(self):
        fatal = msg(b"E", b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user \"alice\"\0\0")
        thread = self.reply(fatal, b"\0\0")
        conn = pgwire.Connection(self.client)
        with self.assertRaises(pgwire.PgError) as ctx:
            conn._startup("alice", "wrong", "orewise")
        thread.join()
        self.assertEqual(ctx.exception.code, "28P01")
        self.assertTrue(conn.closed)

    def test_connect_refused_is_08001(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with self.assertRaises(pgwire.PgError) as ctx:
            pgwire.connect(f"postgres://u:p@127.0.0.1:{port}/db", timeout=2)
        self.assertEqual(ctx.exception.code, "08001")


if __name__ == "__main__":
    unittest.main()
