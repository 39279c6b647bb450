"""Front doors that turn people's input into commands and show the replies."""
