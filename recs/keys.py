"""``recs keys``: make a keys file, sign a user token.

``recs keys new FILE [--server N] [--public N]`` writes a new keys file (mode 600: key hashes and
a token secret) and prints the keys once, with the token secret the storefront backend signs
with. Rotating a key: make a new one, append its ``[[key]]`` block to the live file (the server
reads it again within a second), move the clients over, delete the old block.

``recs keys token FILE --user U --session S [--ttl 900]`` signs a user token with the newest
token secret of FILE, as a storefront backend would (for curl and tests by hand).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from serving.auth import KeyFile, sign_token, write_keys


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="recs keys", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    new = sub.add_parser("new", help="write a new keys file and print its keys once")
    new.add_argument("file", type=Path)
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    tok = sub.add_parser("token", help="sign a user token with the file's newest secret")
    tok.add_argument("file", type=Path)
    tok.add_argument("--user", required=True)
    tok.add_argument("--session", required=True)
    tok.add_argument("--ttl", type=int, default=900, help="seconds (default 900)")
    args = p.parse_args(argv)
    if args.cmd == "new":
        if args.file.exists() and not args.force:
            p.error(f"{args.file} exists (--force to overwrite)")
        made = write_keys(args.file)
        print(f"wrote {args.file} (mode 600; it holds hashes of the keys and the token secret)")
        print(f"server key (the storefront backend; keep secret): {made['server']}")
        print(f"public key (browsers, with a user token):         {made['public']}")
        print(f"token secret id {made['token_kid']}: {made['token_secret']}")
        print("the keys are not stored anywhere else: copy them now")
        return 0
    signer = KeyFile(args.file).ring.signing_secret()
    if signer is None:
        p.error(f"{args.file} has no [[token_secret]]")
    if not 0 < args.ttl <= 86_400:
        p.error(f"--ttl must be in 1..86400 seconds, got {args.ttl}")
    print(sign_token(signer[0], signer[1], args.user, args.session,
                     exp_s=int(time.time()) + args.ttl))
    return 0
