#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
    from proj.startup import run_management_command

    run_management_command(sys.argv)


if __name__ == "__main__":
    main()
