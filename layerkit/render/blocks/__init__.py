"""Building blocks of the rendered Dockerfile, in the manner of hpccm's: each block returns
the instructions it adds to the base stage, to the env stage and to the final stage
(blocks/dockerfile.py's Block), and assemble.py lays them out as stages. Templates only print.
"""
