"""Download a pinned installer and check its published digest. Shipped by layerkit into the
env stage's context: the installer image has Python, not wget or bzip2.

  fetch_installer.py URL sha256|md5 DIGEST OUT [MEMBER DEST]
  MEMBER DEST: extract one file of the downloaded tarball (micromamba's bin/micromamba)
"""

import hashlib
import os
import sys
import tarfile
import urllib.request


def main(argv):
    url, algorithm, digest, out = argv[:4]
    h = hashlib.new(algorithm)
    with urllib.request.urlopen(url, timeout=600) as resp, open(out, "wb") as fh:
        while chunk := resp.read(1 << 20):
            h.update(chunk)
            fh.write(chunk)
    if h.hexdigest() != digest:
        os.unlink(out)
        sys.exit(f"fetch_installer: {url} has {algorithm} {h.hexdigest()}, expected {digest}")
    if len(argv) == 6:
        member, dest = argv[4:]
        with tarfile.open(out) as tf:
            src = tf.extractfile(member)
            if src is None:
                sys.exit(f"fetch_installer: {url} holds no file {member}")
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "wb") as fh:
                fh.write(src.read())
        os.chmod(dest, 0o755)
        os.unlink(out)


if __name__ == "__main__":
    main(sys.argv[1:])
