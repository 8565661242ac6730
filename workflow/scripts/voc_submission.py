from mctformer.logs import redirect_to_log
from mctformer.stages.deeplab import submission_stage

# guarded: on CUDA the CRF pool starts by forkserver, whose workers import this script again
if __name__ == "__main__":
    with redirect_to_log(snakemake.log[0]):
        submission_stage(
            **snakemake.params.config_keys,
            root=snakemake.params.root,
            checkpoint=snakemake.input.checkpoint,
            out_dir=snakemake.output.folder,
            tarball=snakemake.output.tarball,
            threads=snakemake.threads,
        )
