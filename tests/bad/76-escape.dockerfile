# escape=`
FROM ubuntu:22.04
