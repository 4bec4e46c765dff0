RUN echo no base image
