#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) that keeps what it receives.

Used by the end-to-end tests (tests/src/smtp.rs) and by the development
setup (infrastructure/dev/up.sh):

  smtp_sink.py --port 2525 --dir DIR       each message as DIR/N.eml (the raw
                                            bytes) and DIR/N.json (envelope);
                                            the .json appears last, complete
  smtp_sink.py --port 2525 --maildir DIR   a Maildir (for a mail client)

With --tls-cert/--tls-key it speaks TLS: --tls starttls (the default; the
server refuses MAIL before STARTTLS) or --tls implicit (TLS from the first
byte, as on port 465).

Recipients starting with `temp-fail` are answered `451` (try again later)
and with `perm-fail` `550` (rejected for good), so that the tests can check
how Peyk retries and fails. Prints `ready` once it listens.
"""

import argparse
import itertools
import json
import mailbox
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, out_dir=None, maildir=None):
        self.out_dir = out_dir
        self.maildir = mailbox.Maildir(maildir, create=True) if maildir else None
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.lower()
        if local.startswith("temp-fail"):
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        if local.startswith("perm-fail"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        with self.lock:
            number = next(self.counter)
        if self.maildir is not None:
            self.maildir.add(raw)
        else:
            base = os.path.join(self.out_dir, f"{number:06d}")
            with open(base + ".eml", "wb") as f:
                f.write(raw)
            meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos, "size": len(raw)}
            with open(base + ".json.tmp", "w") as f:
                json.dump(meta, f)
            os.rename(base + ".json.tmp", base + ".json")
        return f"250 2.0.0 Ok: queued as {number}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--dir", help="folder for N.eml + N.json per message")
    target.add_argument("--maildir", help="a Maildir to deliver into")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--tls", choices=["starttls", "implicit"], default="starttls")
    args = parser.parse_args()
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)

    handler = Handler(out_dir=args.dir, maildir=args.maildir)
    tls = {}
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        tls = {"ssl_context": context} if args.tls == "implicit" else {"tls_context": context, "require_starttls": True}
    controller = Controller(handler, hostname=args.host, port=args.port, enable_SMTPUTF8=True,
                            data_size_limit=50 * 1024 * 1024, **tls)
    controller.start()
    print("ready", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    controller.stop()


if __name__ == "__main__":
    sys.exit(main())
