"""``dse dps``: proxy search (DPS, dissertation 4.2.2 and listing 4.2; GenNAS task search, 3.3.2).

An ordinary dse search: REA (population 40, sample 10) over a proxy configuration space
(``eproxy_config`` or ``gennas_task``) with the ``proxy_fitness`` provider
(:mod:`dse.proxies.dps`) as evaluator. The best configuration is saved under a name, as JSON
``<store>/<name>/v<k>.json`` (store: ``results/proxies`` or ``$DSE_PROXY_STORE``), with the
architectures it was fitted on; ``[proxies.eproxy] saved = "name"`` (or ``"name@v2"``) and
``dse proxy-eval --proxies eproxy@name`` use it like any proxy. ``--workers``/``--scheduler`` score
configurations on Dask and ``--resume RUN`` continues a killed search where it stopped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dse.cluster import add_cluster_arguments, cluster_table, parse_cluster
from dse.commands.proxy_eval import space_param_values
from dse.inputs import add_space_arguments
from dse.params import ConfigError
from dse.proxies.saved import save_proxy
from dse.registry import COMMANDS, SPACES


def add_labelled_arguments(p: argparse.ArgumentParser) -> None:
    """The few labelled architectures a fit sees (``dse dps``, ``dse proxy-fit``): the table,
    its key and ground-truth columns, their space, and the seeded draw of :func:`fitness_rows`."""
    p.add_argument("--truth", required=True, help="CSV of benchmarked architectures")
    p.add_argument("--target", default="val_acc_cifar10", help="ground-truth column")
    add_space_arguments(p)
    p.add_argument("--arch-column", default="arch_str")
    p.add_argument("--ops-column", default=None, help="second key column (nasbench101: ops)")
    p.add_argument("--archs", type=int, default=20, help="labelled architectures fitted on")
    p.add_argument("--sample-seed", type=int, default=0, help="which architectures (seeded draw)")


#: proxy -> its configuration space
CONFIG_SPACES = {"eproxy": "eproxy_config", "gennas": "gennas_task"}


@COMMANDS.register("dps")
class DpsCommand:
    """Proxy search (DPS / GenNAS task search): REA over a proxy's configurations, fitness = rho."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--proxy", default="eproxy", choices=sorted(CONFIG_SPACES))
        add_labelled_arguments(p)
        p.add_argument("--population", type=int, default=40)
        p.add_argument("--sample", type=int, default=10)
        p.add_argument("--budget", type=int, default=200, help="configurations evaluated")
        p.add_argument(
            "--iterations",
            type=int,
            default=None,
            help="training steps per architecture "
            "(default: the proxy's, 10 for Eproxy, 100 for GenNAS)",
        )
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--name", default=None, help="save the best configuration under this name")
        p.add_argument("--output", default="results")
        p.add_argument("--quiet", action="store_true")
        p.add_argument(
            "--workers",
            type=int,
            default=None,
            help="score configurations on a Dask LocalCluster of this many worker processes",
        )
        p.add_argument(
            "--scheduler", default=None, help="... or on a running Dask scheduler (address)"
        )
        add_cluster_arguments(p)
        p.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="children bred per REA step and scored together (default: the --workers "
            "count, or jobs x processes of a --cluster batch system; 1 with --scheduler or "
            "in-process); "
            "it shapes the search, so keep it to reproduce a run on another cluster",
        )
        p.add_argument(
            "--resume",
            default=None,
            metavar="RUN",
            help="continue an interrupted dps run (folder or id) with the same arguments: the "
            "seeded search replays its finished configurations without scoring them again",
        )

    def run(self, args: argparse.Namespace) -> int:
        import dse
        from dse.proxies.dps import config_params, fitness_rows, read_truth  # torch: run only

        key = args.arch_column if not args.ops_column else [args.arch_column, args.ops_column]
        labelled = read_truth(args.truth, args.target, key, "--truth", "--target/--arch-column")
        if not 2 <= args.archs <= len(labelled):
            raise ConfigError(f"--archs: must be in 2..{len(labelled)}, got {args.archs}")
        space_params = {} if args.iterations is None else {"iterations": args.iterations}
        target_params = space_param_values(args.space_param)
        execution = {
            k: v
            for k, v in (("workers", args.workers), ("scheduler", args.scheduler))
            if v is not None
        }
        cluster = cluster_table(args)
        spec = parse_cluster(cluster) if cluster else None
        slots = spec.jobs * spec.processes if spec is not None and spec.batch else 1
        batch = args.batch_size if args.batch_size is not None else (args.workers or slots)
        config = {
            "run": {
                "name": f"dps-{args.proxy}",
                "seed": args.seed,
                **({"plugins": list(args.plugins)} if args.plugins else {}),
                **(
                    {"plugin_dirs": [str(Path(d).resolve()) for d in args.plugin_dir]}
                    if args.plugin_dir
                    else {}
                ),
            },
            "space": {"name": CONFIG_SPACES[args.proxy], **space_params},
            "proxies": {
                "proxy_fitness": {
                    "truth": args.truth,
                    "column": args.target,
                    "space": args.space,
                    "key": key,
                    "archs": args.archs,
                    "sample_seed": args.sample_seed,
                    **({"space_params": target_params} if target_params else {}),
                }
            },
            "objectives": [{"metric": "rho", "direction": "max"}],
            "search": {
                "driver": "rea",
                "population_size": args.population,
                "sample_size": args.sample,
                "max_evaluations": args.budget,
                "batch_size": batch,
                **execution,
            },
        }
        result = dse.run(
            config,
            resume=args.resume,
            output=args.output,
            progress=not args.quiet,
            cluster=cluster,
        )
        df = dse.results.load(result.path)
        ok = df[df.status == "ok"]
        if not len(ok):
            raise RuntimeError(f"no configuration was evaluated successfully; see {result.path}")
        best = ok.loc[ok.rho.idxmax()]
        space = SPACES.create(CONFIG_SPACES[args.proxy], **space_params)
        params = config_params(args.proxy, space.decisions(json.loads(best.arch)))
        print(
            f"best {args.proxy} configuration: rho {best.rho:.4f} on {args.archs} architectures "
            f"({len(ok)} configurations, {ok.proxy_s.mean():.2f} s per architecture)"
        )
        print(f"  {best.arch_id}")
        if args.name:
            table = labelled
            texts = table.arch_text.iloc[
                fitness_rows(len(table), args.archs, args.sample_seed)
            ].tolist()
            path = save_proxy(
                args.name,
                args.proxy,
                params,
                {
                    "run": str(result.path),
                    "rho": float(best.rho),
                    "truth": args.truth,
                    "target": args.target,
                    "space": args.space,
                    "space_params": target_params,
                    "key": key,
                    "archs": texts,
                    "configurations": int(len(ok)),
                },
            )
            print(
                f'saved: {path}  (use [proxies.{args.proxy}] saved = "{args.name}", '
                f"or dse proxy-eval --proxies {args.proxy}@{args.name})"
            )
        return 0
