"""Holiday data files of the working calendar and the script that generates them."""
