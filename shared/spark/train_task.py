"""A Sluice training job as a Spark task (Databricks), with the outputs contract every
compute backend keeps:

    train_task.py --data DIR --config CONFIG.json --output DIR --logs LOGS.txt
                  [--trainer PROGRAM] -- ARGV...

DATA is the dataset version's folder (``manifest.json``, ``data.parquet``), CONFIG the
run's effective training config, OUTPUT the run's output folder and LOGS where its log
goes; all are paths the cluster's Hadoop file systems reach (abfss://, dbfs:/, local).
They are copied to the driver's local disk, ARGV runs there with ``{data}``,
``{config}``, ``{output}`` and ``{trainer}`` replaced by the local paths (TRAINER, when
given, is copied too and made executable: the reference trainer, ``sluice``), and, when
it exits 0, the local output folder is copied to OUTPUT. The log is copied to LOGS
whatever happened, and the task exits with the command's code, so the run fails when the
training fails.

Only the standard library and pyspark are used (pyspark for the Hadoop file systems).
"""

import argparse
import os
import stat
import subprocess
import sys
import tempfile

from pyspark.sql import SparkSession


def hadoop(spark, path):
    jvm = spark._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark._jsc.hadoopConfiguration()), hpath


def fetch(spark, remote, local):
    fs, src = hadoop(spark, remote)
    fs.copyToLocalFile(False, src, spark._jvm.org.apache.hadoop.fs.Path(local), True)


def publish(spark, local_dir, remote_dir):
    """Copies each file under local_dir to remote_dir, keeping relative paths."""
    for root, _, files in os.walk(local_dir):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, local_dir)
            fs, dst = hadoop(spark, remote_dir.rstrip("/") + "/" + rel)
            fs.copyFromLocalFile(False, True, spark._jvm.org.apache.hadoop.fs.Path(path), dst)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--logs", required=True)
    parser.add_argument("--trainer")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command after --")

    spark = SparkSession.builder.appName("sluice-train").getOrCreate()
    work = tempfile.mkdtemp(prefix="sluice-train-")
    local = {
        "data": os.path.join(work, "data"),
        "config": os.path.join(work, "config.json"),
        "output": os.path.join(work, "output"),
        "trainer": os.path.join(work, "trainer"),
    }
    fetch(spark, args.data.rstrip("/"), local["data"])
    fetch(spark, args.config, local["config"])
    os.makedirs(local["output"])
    if args.trainer:
        fetch(spark, args.trainer, local["trainer"])
        os.chmod(local["trainer"], os.stat(local["trainer"]).st_mode | stat.S_IXUSR)

    def fill(arg):
        for name, path in local.items():
            arg = arg.replace("{" + name + "}", path)
        return arg

    log_path = os.path.join(work, "logs.txt")
    with open(log_path, "wb") as log:
        code = subprocess.call([fill(a) for a in command], stdout=log, stderr=subprocess.STDOUT)
    with open(log_path, "rb") as log:
        sys.stdout.write(log.read().decode("utf-8", "replace"))
    fs, dst = hadoop(spark, args.logs)
    fs.copyFromLocalFile(False, True, spark._jvm.org.apache.hadoop.fs.Path(log_path), dst)
    if code == 0:
        publish(spark, local["output"], args.output)
    spark.stop()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
