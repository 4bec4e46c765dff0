"""Write a pip requirements file with its ${NAME}s filled in from BuildKit secrets
(/run/secrets/NAME). Shipped by layerkit into the env stage's context; the output goes to a
tmpfs mount of the same RUN, so no layer holds a credential, and no variable is exported,
so pip never reads one as an option (pip takes any PIP_* variable as its own setting).

  expand_secrets.py IN OUT SECRETS_DIR NAME...   (SECRETS_DIR: /run/secrets in a build)
"""

import sys


def main(argv):
    src, dest, secrets, names = argv[0], argv[1], argv[2], argv[3:]
    with open(src, encoding="utf-8") as fh:
        text = fh.read()
    for name in names:
        with open(f"{secrets}/{name}", encoding="utf-8") as fh:
            text = text.replace("${" + name + "}", fh.read().strip())
    with open(dest, "w", encoding="utf-8") as fh:
        fh.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
